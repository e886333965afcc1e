"""Overlapped rollouts on this machine: GRPO on the toy lamp corridor with
`rollout.max_staleness` 0 (alternating), 1 and 2, side by side in one run, from the same
from-scratch model.

    python bench/staleness.py [--steps 8] [--size tiny] [--mode choice] [--out bench.json]

Per k: mean step time (steps 2.. : step 1 is a cold start whatever k is), the RL loop's
wall time, generation tokens/s (tokens / the time the rollouts took to play) and
effective tokens/s (tokens / the loop's wall time, what overlap raises), the trainer's
mean wait for rollouts, mean update time and the staleness actually trained on.
Choice mode by default: the untrained model then wins some episodes, so groups have
reward variance and every step really updates (free mode from scratch rarely does).
Figures, not assertions: compare runs on the same machine only; on a CPU the producer
and the trainer share the cores, so overlap gains only what one side leaves idle.
OMP_NUM_THREADS defaults to 1 here: with two OpenMP threads per torch thread on a busy
2-core machine, decoding is ~10x slower and the figures measure contention, not overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported (see above)

from agenthub.environments.toy import ENV_ID, SUITE, register_toy_env
from agenthub.trainers.config import load_config
from agenthub.trainers.grpo import iter_metrics, train
from agenthub.trainers.model_init import corpus_from_envs, init_model


def run(model: Path, out: Path, k: int, args: argparse.Namespace) -> dict[str, float]:
    """One run at max_staleness k; its figures."""
    cfg = load_config(base={
        "model": str(model), "suite": SUITE, "steps": args.steps, "seed": 0, "tensorboard": False, "eval": None,
        "rollout": {"mode": args.mode, "group_size": args.group_size, "tasks_per_step": args.tasks,
                    "concurrency": args.group_size * args.tasks, "max_new_tokens": args.new, "max_context": 1024,
                    "max_staleness": k},
        "loss": {"tis_cap": 2.0}, "optim": {"lr": 1e-3}})
    train(cfg, out, progress=False)
    steps = [m for m in iter_metrics(out / "metrics.jsonl") if m.get("phase") == "rl"]
    warm = steps[1:] or steps
    tokens = sum(m["generation_tokens_per_s"] * m["rollout_time"] for m in steps)
    wall = sum(m["step_time"] for m in steps)
    return {
        "k": k,
        "step_time_s": statistics.mean(m["step_time"] for m in warm),
        "rl_wall_s": wall,
        "generation_tokens_per_s": tokens / sum(m["rollout_time"] for m in steps),
        "effective_tokens_per_s": tokens / wall,
        "rollout_wait_s": statistics.mean(m.get("rollout_wait", m["rollout_time"]) for m in warm),
        "update_time_s": statistics.mean(m["update_time"] for m in warm),
        "staleness_mean": statistics.mean(m.get("staleness_mean", 0.0) for m in steps),
        "staleness_max": max(m.get("staleness_max", 0) for m in steps),
        "samples_stale_dropped": sum(m.get("samples_stale_dropped", 0) for m in steps),
        "success_rate_last": steps[-1]["success_rate"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--mode", default="choice", choices=["free", "choice"])
    parser.add_argument("--new", type=int, default=16, help="max new tokens per turn (free mode)")
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=4, help="tasks per step")
    parser.add_argument("--staleness", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    register_toy_env()
    with tempfile.TemporaryDirectory() as tmp:
        model = init_model(Path(tmp) / "model", args.size, corpus_from_envs([ENV_ID], 20))
        rows = [run(model, Path(tmp) / f"k{k}", k, args) for k in args.staleness]
    print(f"{'':>24}" + "".join(f"{'k=' + str(row['k']):>12}" for row in rows))
    for key in [c for c in rows[0] if c != "k"]:
        print(f"{key:>24}" + "".join(f"{row[key]:>12.3f}" if isinstance(row[key], float) else f"{row[key]:>12}"
                                     for row in rows))
    for row in rows[1:]:
        print(f"k={row['k']}: {rows[0]['step_time_s'] / row['step_time_s']:.2f}x the steps per second of "
              f"k={rows[0]['k']}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
