"""Evaluation: play a target (an env id or a suite split) with an agent and summarise.

Writes `results.json`, `trajectories.jsonl` and `report.html` into the output folder;
the `results.json` fields are fixed by DESIGN.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from agenthub.agents import load_agent
from agenthub.agents.base import Agent
from agenthub.errors import AgentHubError
from agenthub.factory import make
from agenthub.registry import spec
from agenthub.runner import Episode, run_episodes
from agenthub.suites import get_suite
from agenthub.types import Trajectory


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021): P(at least one of k draws from n samples,
    c of them correct, is correct) = 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def target_episodes(target: str, episodes: int | None, samples: int, seed: int) -> list[Episode]:
    """Env id -> `episodes` seeds from `seed` on; suite "NAME[:SPLIT]" -> its tasks.

    Raises AgentHubError for an unknown target, `episodes` or `samples` below 1, a
    negative `seed`, or a target with no tasks."""
    for what, value, low in (("episodes", episodes, 1), ("samples", samples, 1), ("seed", seed, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise AgentHubError(f"{what} must be an integer of at least {low}, not {value!r}")
    name, _, split = target.partition(":")
    try:
        suite = get_suite(name)
    except AgentHubError:
        suite = None
    if suite is not None:
        tasks = suite.tasks(split or "test", episodes)
        if not tasks:
            raise AgentHubError(f"suite {name!r} has no {split or 'test'} tasks")
        return [Episode(t.env_id, t.seed, k, t.kwargs) for t in tasks for k in range(samples)]
    env_id = spec(target).id  # raises a clear error for an unknown id
    n = 10 if episodes is None else episodes
    return [Episode(env_id, seed + i, k) for i in range(n) for k in range(samples)]


def holds_evaluation(out: str | Path) -> str | None:
    """The name of the evaluation file already in folder `out` (results.json, or the
    trajectories.jsonl of a run cut short), or None."""
    return next((name for name in ("results.json", "trajectories.jsonl") if (Path(out) / name).exists()), None)


def summarize(trajectories: list[Trajectory], target: str, agent: str, samples: int,
              duration_s: float) -> dict[str, Any]:
    by_task: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        by_task[t.task_id].append(t)
    per_task = [{
        "task_id": task_id, "samples": len(ts), "successes": sum(t.success for t in ts),
        "success_rate": _mean([float(t.success) for t in ts]), "mean_return": _mean([t.return_ for t in ts]),
        "mean_turns": _mean([float(len(t.turns)) for t in ts]),
        "stop_reasons": dict(Counter(t.stop_reason for t in ts)),
    } for task_id, ts in by_task.items()]
    ks = sorted({k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= samples} | {samples})
    return {
        "target": target,
        "agent": agent,
        "episodes": len(trajectories),
        "tasks": len(by_task),
        "samples": samples,
        "success_rate": _mean([float(t.success) for t in trajectories]),
        "mean_return": _mean([t.return_ for t in trajectories]),
        "mean_turns": _mean([float(len(t.turns)) for t in trajectories]),
        "pass_at_k": {str(k): _mean([pass_at_k(p["samples"], p["successes"], k) for p in per_task
                                     if p["samples"] >= k]) for k in ks},
        "errors": sum(t.stop_reason in ("error", "timeout") for t in trajectories),
        "stop_reasons": dict(Counter(t.stop_reason for t in trajectories)),
        "per_task": per_task,
        "duration_s": round(duration_s, 3),
    }


def _mean(xs: list[float]) -> float:
    return float(statistics.fmean(xs)) if xs else 0.0


def evaluate(target: str, agent: Agent | str, out: str | Path, *, episodes: int | None = None,
             samples: int = 1, seed: int = 0, concurrency: int = 4, timeout: float | None = None,
             progress: bool = True, ray: str | None = None, overwrite: bool = True) -> dict[str, Any]:
    """Run the evaluation and write results.json, trajectories.jsonl and report.html.

    With `overwrite=False`, an OUT that already holds an evaluation (results.json or
    trajectories.jsonl) raises AgentHubError before anything runs, so a second run
    never replaces the first one's episodes unasked (the CLI's default).

    `ray`: a Ray address (or "local") to play the envs on Ray actors (`agenthub.ray_runner`)."""
    episode_list = target_episodes(target, episodes, samples, seed)
    agent_obj = load_agent(agent) if isinstance(agent, str) else agent
    out = Path(out)
    held = holds_evaluation(out)
    if held and not overwrite:
        raise AgentHubError(f"{out} already holds an evaluation ({held}): pass --overwrite to replace it, "
                            f"or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "trajectories.jsonl"
    jsonl.unlink(missing_ok=True)
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        make_env = make
        if ray:
            from agenthub.ray_runner import RayEnvPool
            make_env = stack.enter_context(RayEnvPool(ray, size=concurrency)).make
        trajectories = run_episodes(episode_list, agent_obj, concurrency=concurrency, timeout=timeout, out=jsonl,
                                    progress=f"eval {target}" if progress else None, make_env=make_env)
    results = summarize(trajectories, target, getattr(agent_obj, "name", str(agent)), samples,
                        time.monotonic() - start)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    from agenthub.report import write_eval_report
    write_eval_report(out / "report.html", results, trajectories)
    return results
