"""Tool-use envs: knowledge-base build and search latency, env steps/s, tool latency,
and oracle/random success.

    .venv/bin/python bench/tools.py [--episodes 200] [--json OUT.json]

- search QA: building the world (uncached), BM25 search latency (p50/p95, ms) for
  entity names and for whole questions, env steps/s under the oracle's plan;
- compute: env steps/s per task kind under the oracle's plan, and the Python tool's
  latency in its sandbox;
- success of the oracle and the random agent on `--episodes` test tasks of each suite;
- pathological calls: the step latency and answer size of inputs built to be slow or
  huge (each must be an `Error: ...` within the tool's budget; see `limits.py`).
Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

from timing import percentiles_ms

import agenthub
from agenthub.agents import load_agent
from agenthub.environments.tools.compute import KINDS
from agenthub.environments.tools.compute_tools import PythonRunner
from agenthub.environments.tools.knowledge_base import build_knowledge_base
from agenthub.runner import Episode, run_episodes
from agenthub.types import tool_calls_message

PATHOLOGICAL = [  # (env id, tool, arguments)
    ("tools/compute-v0", "calculator", {"expression": "9**9**9"}),
    ("tools/compute-v0", "calculator", {"expression": "((10**100)**100)**100"}),
    ("tools/compute-v0", "calculator", {"expression": "10**999*10**999*10**999*10**999*10**999"}),
    ("tools/compute-v0", "calculator", {"expression": "round(5, -10**9)"}),
    ("tools/compute-v0", "calculator", {"expression": "-" * 999 + "1"}),
    ("tools/compute-v0", "calculator", {"expression": "1+" * 50_000 + "1"}),
    ("tools/compute-v0", "convert_units", {"value": 10**400, "from_unit": "m", "to_unit": "km"}),
    ("tools/compute-v0", "date_add", {"date": "2020-01-01", "days": 10**30}),
    ("tools/compute-v0", "python", {"code": "print('a' * 10**8)"}),
    ("tools/compute-v0", "python", {"code": "s = 'a' * 10**9"}),
    ("tools/compute-v0", "python", {"code": "while True: pass"}),
    ("tools/search-qa-v0", "search", {"query": " ".join(f"term{i}" for i in range(2000))}),
    ("tools/search-qa-v0", "search", {"query": "(a+)+$" * 1000}),
    ("tools/search-qa-v0", "open", {"doc_id": "x" * 10**6}),
    ("tools/search-qa-v0", "answer", {"answer": "x" * 10**6}),
]


def oracle_steps_per_second(env_id: str, seeds: range, **kwargs: Any) -> dict[str, float]:
    """Env time only: reset, then every action of the oracle's plan."""
    env = agenthub.make(env_id, **kwargs)
    steps, busy = 0, 0.0
    for seed in seeds:
        t0 = time.perf_counter()
        env.reset(seed=seed)
        busy += time.perf_counter() - t0
        for action in env.oracle_actions():
            t0 = time.perf_counter()
            env.step(action)
            busy += time.perf_counter() - t0
            steps += 1
    env.close()
    return {"steps_per_s": round(steps / busy, 1), "steps": steps}


def search_qa() -> dict[str, Any]:
    t0 = time.perf_counter()
    kb = build_knowledge_base.__wrapped__(0)
    build_s = time.perf_counter() - t0
    names = [e.name for e in random.Random(0).sample(list(kb.entities.values()), 300)]
    env = agenthub.make("tools/search-qa-v0")
    questions = [env.reset(seed=s)[0][-1]["content"] for s in range(300)]
    timings = {}
    for label, queries in (("name_queries", names), ("question_queries", questions)):
        samples = []
        for q in queries:
            t0 = time.perf_counter()
            kb.search(q)
            samples.append(time.perf_counter() - t0)
        timings[label] = percentiles_ms(samples, digits=2)
    return {"documents": len(kb.documents), "build_s": round(build_s, 2), "search": timings,
            "env": oracle_steps_per_second("tools/search-qa-v0", range(100))}


def compute() -> dict[str, Any]:
    per_kind = {kind: oracle_steps_per_second("tools/compute-v0", range(40), kinds=[kind]) for kind in KINDS}
    runner = PythonRunner()
    samples = []
    for i in range(30):
        t0 = time.perf_counter()
        runner.run(f"print({i} * 2)")
        samples.append(time.perf_counter() - t0)
    backend = runner.backend_used
    runner.close()
    return {"env_by_kind": per_kind, "python_tool": {"backend": backend, **percentiles_ms(samples, digits=2)}}


def success(episodes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for suite in ("tools/search-qa", "tools/compute"):
        tasks = agenthub.load_suite(suite, "test", limit=episodes)
        out[suite] = {}
        for agent_name in ("oracle", "random"):
            trajectories = run_episodes([Episode(t.env_id, t.seed) for t in tasks], load_agent(agent_name),
                                        concurrency=2)
            out[suite][agent_name] = {
                "success": round(statistics.mean(t.success for t in trajectories), 3),
                "mean_outcome": round(statistics.mean(t.outcome for t in trajectories), 3),
                "errors": sum(t.stop_reason == "error" for t in trajectories)}
    return out


def pathological() -> dict[str, Any]:
    rows, envs = [], {env_id: agenthub.make(env_id) for env_id in {p[0] for p in PATHOLOGICAL}}
    try:
        for env_id, tool, arguments in PATHOLOGICAL:
            env = envs[env_id]
            env.reset(seed=1)
            start = time.perf_counter()
            obs, *_ = env.step(tool_calls_message([(tool, arguments)], "p"))
            rows.append({"tool": tool, "input": str(arguments)[:50], "ms": round(1000 * (time.perf_counter() - start)),
                         "answer_chars": len(obs[0]["content"]), "answer": obs[0]["content"][:70]})
    finally:
        for env in envs.values():
            env.close()
    return {"calls": rows, "slowest_ms": max(r["ms"] for r in rows),
            "longest_answer_chars": max(r["answer_chars"] for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=200, help="test tasks per suite and agent")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    results = {}
    for name, run in (("search_qa", search_qa), ("compute", compute), ("success", lambda: success(args.episodes)),
                      ("pathological", pathological)):
        print(f"{name} ...", flush=True)
        results[name] = run()
        print(json.dumps(results[name], indent=1), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
