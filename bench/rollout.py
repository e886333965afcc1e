"""Rollout engines: transformers (`HFEngine`) vs vLLM (`VLLMEngine`) on the same model.

    .venv-vllm/bin/python bench/rollout.py [--model DIR] [--suite tools/guess-number]
        [--batches 1 16 64] [--max-new-tokens 32] [--repeats 3] [--engines hf vllm-batched vllm] [--compile]
        [--json OUT.json]

Runs in .venv-vllm (it has both; for TextWorld suites add `.venv-vllm/bin/pip install
textworld`). The default model is a from-scratch `tiny` model (created in
runs/bench/rollout-model); it is untrained, so every turn runs to `max_new_tokens`. A
trained one, e.g. the demo's SFT policy on its own suite (`--model runs/demo/sft/model
--suite textworld/w2-o3-q2to4-recap`), ends its turns at different lengths, which is
where continuous batching pays. Per engine and batch size B:
- generation tokens/s: one `generate` call on B first prompts of the suite's tasks;
- episodes/s and tokens/s of whole rollouts: 2*B episodes of the suite through the core
  runner with B in flight and the trainer's `PolicyAgent`, which batches their turns for
  `hf` and `vllm-batched`, and sends each turn as it comes to `vllm` (continuous
  batching: it admits requests at every decoding step); with where their time goes: the
  share of wall time when the engine is generating, the mean number of requests it holds
  then, prompt tokens per turn, and (vLLM) the share of prompt tokens its prefix cache
  served across turns.
Each figure is the median of `repeats` runs. vLLM runs eager on CPU unless --compile;
both engines run with one torch thread, as vLLM's in-process CPU engine does.
The machine's load average is printed with the figures: on a shared machine it moves
them more than anything here. Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_CACHE_ROOT", str(Path(__file__).resolve().parents[1] / ".cache" / "vllm"))

import torch  # noqa: E402

import agenthub  # noqa: E402
from agenthub.runner import Episode, run_episodes  # noqa: E402
from agenthub.suites import load_suite  # noqa: E402
from agenthub.trainers.chat import ChatFormat  # noqa: E402
from agenthub.trainers.checkpoint import load_model  # noqa: E402
from agenthub.trainers.engine import HFEngine  # noqa: E402
from agenthub.trainers.model_init import corpus_from_envs, init_model  # noqa: E402
from agenthub.trainers.policy import PolicyAgent  # noqa: E402


def median_of(repeats: int, run: Callable[[], dict[str, float]]) -> dict[str, float]:
    runs = [run() for _ in range(repeats)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def first_prompts(suite: str, tokenizer: Any, n: int) -> list[list[int]]:
    chat = ChatFormat(tokenizer)
    prompts = []
    for task in load_suite(suite, "test", n):
        env = agenthub.make(task.env_id, **task.kwargs)
        obs, _ = env.reset(seed=task.seed)
        prompts.append(chat.prompt(obs, env.tools))
        env.close()
    return prompts


def generation(engine: Any, prompts: list[list[int]], max_new_tokens: int) -> dict[str, float]:
    t0 = time.perf_counter()
    out = engine.generate(prompts, list(range(len(prompts))), max_new_tokens=max_new_tokens, temperature=1.0)
    seconds = time.perf_counter() - t0
    return {"generate_tokens_per_s": sum(len(g.token_ids) for g in out) / seconds}


class TimedEngine:
    """An engine that times its `generate` calls: what separates engine time from the rest
    of a rollout (runner, envs, tokenising, the agent's batcher). Calls may overlap (a
    `continuous` engine is called from every episode's thread), so it counts the seconds
    when at least one call is in the engine, and the mean number of requests in the engine
    over those seconds (for a batched engine: the mean batch)."""

    def __init__(self, engine: Any, continuous: bool):
        self.engine, self.eos_token_id, self.continuous = engine, engine.eos_token_id, continuous
        self.requests, self.seconds, self.request_seconds, self.prompt_tokens = 0, 0.0, 0.0, 0
        self._lock, self._in_flight, self._busy_since = threading.Lock(), 0, 0.0

    def generate(self, prompts: list[list[int]], seeds: list[int], **options: Any) -> Any:
        with self._lock:
            t0 = time.perf_counter()
            self._in_flight += 1
            self._busy_since = t0 if self._in_flight == 1 else self._busy_since
        out = self.engine.generate(prompts, seeds, **options)
        with self._lock:
            t1 = time.perf_counter()
            self._in_flight -= 1
            self.seconds += t1 - self._busy_since if self._in_flight == 0 else 0.0
            self.request_seconds += (t1 - t0) * len(prompts)
            self.requests += len(prompts)
            self.prompt_tokens += sum(len(p) for p in prompts)
        return out

    def __getattr__(self, name: str) -> Any:  # score, load_weights, ...: untimed
        return getattr(self.engine, name)


def rollouts(engine: Any, tokenizer: Any, suite: str, batch: int, max_new_tokens: int,
             continuous: bool) -> dict[str, float]:
    timed = TimedEngine(engine, continuous)
    agent = PolicyAgent(timed, tokenizer, temperature=1.0, max_new_tokens=max_new_tokens, max_batch=batch)
    tasks = load_suite(suite, "test", 2 * batch)
    episodes = [Episode(t.env_id, t.seed, 0, t.kwargs) for t in tasks]
    cached0, prompt0 = getattr(engine, "cached_prompt_tokens", 0), getattr(engine, "prompt_tokens", 0)
    t0 = time.perf_counter()
    trajectories = run_episodes(episodes, agent, concurrency=batch)
    seconds = time.perf_counter() - t0
    errors = [t.error for t in trajectories if t.stop_reason == "error"]
    if errors:
        raise RuntimeError(f"{len(errors)} episodes failed, e.g. {errors[0]}")
    prompt = getattr(engine, "prompt_tokens", 0) - prompt0  # vLLM only: its prefix cache's share
    return {"episodes_per_s": len(episodes) / seconds, "rollout_tokens_per_s": agent.generated_tokens / seconds,
            "turns_per_episode": sum(len(t.turns) for t in trajectories) / len(trajectories),
            "engine_share": timed.seconds / seconds, "mean_batch": timed.request_seconds / max(timed.seconds, 1e-9),
            "prompt_tokens_per_turn": timed.prompt_tokens / max(1, timed.requests),
            "prefix_cached_share": (getattr(engine, "cached_prompt_tokens", 0) - cached0) / prompt if prompt else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a model: directory, Hub id, .gguf, adapter or known name "
                                                       "(default: a fresh tiny model)")
    parser.add_argument("--suite", default="tools/guess-number")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", nargs="+", choices=["hf", "vllm-batched", "vllm"], default=["hf", "vllm"],
                        help="vllm-batched: the vLLM engine given batches by the agent's batcher, as the HF "
                             "engine is, instead of each episode's turn as it comes")
    parser.add_argument("--compile", action="store_true", help="vLLM with torch.compile (CPU default: eager)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    model_dir = args.model or Path("runs/bench/rollout-model")  # --model: any model spec
    if args.model is None and not (model_dir / "config.json").exists():
        env_id = load_suite(args.suite, "train", 1)[0].env_id
        init_model(model_dir, "tiny", corpus_from_envs([env_id], 20))
    model, tokenizer = load_model(model_dir, "cpu")
    print(f"model {model_dir} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters), "
          f"suite {args.suite}, {args.max_new_tokens} new tokens per turn, median of {args.repeats}")

    prompts = first_prompts(args.suite, tokenizer, max(args.batches))
    results: dict[str, Any] = {"model": str(model_dir), "suite": args.suite, "max_new_tokens": args.max_new_tokens,
                               "vllm_compiled": args.compile, "runs": []}
    print(f"{'engine':<12} {'batch':>5} {'generate tok/s':>15} {'rollout tok/s':>14} {'episodes/s':>11} {'turns/ep':>9} "
          f"{'in engine':>9} {'mean batch':>10} {'prompt/turn':>11} {'prefix hit':>10}")
    torch.set_num_threads(1)  # vLLM's in-process CPU engine runs with one torch thread: the same for both
    vllm: Any = None
    for name in args.engines:
        if name == "hf":
            engine: Any = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id)
        else:  # vllm and vllm-batched share one engine
            if vllm is None:
                from agenthub.trainers.vllm_engine import VLLMEngine
                t0 = time.perf_counter()
                vllm = VLLMEngine(model_dir, dtype="float32", enforce_eager=not args.compile)
                results["vllm_start_s"] = time.perf_counter() - t0
            engine = vllm
        continuous = name == "vllm"
        for batch in args.batches:
            engine.generate(prompts[:batch], [0] * batch, max_new_tokens=4, temperature=1.0)  # warm-up
            row = {"engine": name, "batch": batch,
                   **median_of(args.repeats, lambda: generation(engine, prompts[:batch], args.max_new_tokens)),
                   **median_of(args.repeats, lambda: rollouts(engine, tokenizer, args.suite, batch,
                                                              args.max_new_tokens, continuous))}
            results["runs"].append(row)
            print(f"{name:<12} {batch:>5} {row['generate_tokens_per_s']:>15.0f} {row['rollout_tokens_per_s']:>14.0f} "
                  f"{row['episodes_per_s']:>11.2f} {row['turns_per_episode']:>9.1f} {row['engine_share']:>9.0%} "
                  f"{row['mean_batch']:>10.1f} {row['prompt_tokens_per_turn']:>11.0f} "
                  f"{row['prefix_cached_share']:>10.0%}", flush=True)
    if "vllm_start_s" in results:
        print(f"vLLM engine start: {results['vllm_start_s']:.1f} s")
    for batch in args.batches if "hf" in args.engines else []:
        hf = next(r for r in results["runs"] if r["engine"] == "hf" and r["batch"] == batch)
        for vl in (r for r in results["runs"] if r["engine"] != "hf" and r["batch"] == batch):
            print(f"batch {batch}: {vl['engine']}/hf generate x{vl['generate_tokens_per_s'] / hf['generate_tokens_per_s']:.2f}, "
                  f"episodes x{vl['episodes_per_s'] / hf['episodes_per_s']:.2f}, "
                  f"rollout tokens/s x{vl['rollout_tokens_per_s'] / hf['rollout_tokens_per_s']:.2f}")
    results["load_average"] = os.getloadavg()
    print(f"load average (1/5/15 min) at the end: {results['load_average']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
