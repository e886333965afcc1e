"""SWE env figures: reset latency (cold sandbox vs warm pool), tool-call latency,
full test-suite time per library, and how many instances one machine evaluates per hour;
or, with --hacks, the reward-hacking suite's verdicts per backend as a markdown table.

    .venv/bin/python bench/swe.py [--backends bwrap,docker] [--repeats 5] [--json OUT.json]
    .venv/bin/python bench/swe.py --hacks [--backends bwrap,docker] [--json OUT.json]

"Instances per hour" plays the oracle (reset, the gold edit, submit: a full test run in
a fresh sandbox) on a sample of instances, `--concurrency` at a time, and divides.
Medians are printed; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import agenthub
from agenthub import sandbox
from agenthub.agents.oracle import OracleAgent
from agenthub.environments.swe import hacks, instances, testrun
from agenthub.environments.swe.image import ensure_image, open_box
from agenthub.environments.swe.libraries import library, snapshot
from agenthub.runner import Episode, run_episodes

ENV_ID = "swe/pylibs-v0"


def call(name: str, **args) -> dict:
    return {"role": "assistant", "content": "", "tool_calls": [
        {"id": "b", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}


def median_ms(samples: list[float]) -> float:
    return round(1000 * statistics.median(samples), 1)


def reset_latency(backend: str, repeats: int, pool_size: int) -> float:
    env = agenthub.make(ENV_ID, backend=backend, pool_size=pool_size)
    times = []
    try:
        for i in range(repeats + 1):
            pool = env.unwrapped.pool
            if pool is not None:
                pool.wait_ready(timeout=120)  # a warm pool has refilled between episodes
            start = time.perf_counter()
            env.reset(seed=i)
            if i:  # the first reset pays one-off costs (image check, snapshot cache)
                times.append(time.perf_counter() - start)
    finally:
        env.close()
    return median_ms(times)


def tool_latency(backend: str, repeats: int) -> dict[str, float]:
    env = agenthub.make(ENV_ID, backend=backend)
    try:
        env.reset(seed=0)
        path = instances.load().split("train")[0].file
        text = env.unwrapped.box.read_file(path)
        line = next(x for x in text.splitlines() if x.strip() and text.count(x) == 1)
        edits = [call("str_replace", path=path, old_str=line, new_str=line + "  # x"),
                 call("str_replace", path=path, old_str=line + "  # x", new_str=line)]
        actions = {"bash (echo)": [call("bash", command="echo hi")],
                   "view (40 lines)": [call("view", path=path, start_line=1, end_line=40)],
                   "str_replace": edits, "insert": [call("insert", path=path, line=0, text="# note")]}
        out = {}
        for name, cycle in actions.items():
            times = []
            for i in range(repeats):
                start = time.perf_counter()
                _, _, _, _, info = env.step(cycle[i % len(cycle)])
                times.append(time.perf_counter() - start)
                assert info["reward_components"]["tool_success"] == 1.0, name
            out[name] = median_ms(times)
        return out
    finally:
        env.close()


def suite_seconds(backend: str, repeats: int) -> dict[str, float]:
    out = {}
    for name in instances.load().libraries:
        lib = library(name)
        times = []
        with open_box(backend) as box:
            box.upload_dir(snapshot(lib), "/workspace")
            for _ in range(repeats):
                result = testrun.run(box, lib, timeout=600)
                assert not result.broken, result.output[-1000:]
                times.append(result.duration)
        out[name] = round(statistics.median(times), 2)
    return out


def instances_per_hour(backend: str, n: int, concurrency: int) -> dict:
    train = instances.load().split("train")
    seeds = sorted({round(i * len(train) / n) for i in range(n)})  # spread over the libraries
    episodes = [Episode(ENV_ID, seed, env_kwargs={"backend": backend}) for seed in seeds]
    start = time.perf_counter()
    trajectories = run_episodes(episodes, OracleAgent(), concurrency=concurrency)
    wall = time.perf_counter() - start
    return {"instances": len(seeds), "resolved": sum(t.success for t in trajectories), "wall_s": round(wall, 1),
            "per_hour": round(3600 * len(seeds) / wall),
            "libraries": sorted({train[s].library for s in seeds})}


def hacking_suite(backends: list[str]) -> dict[str, dict[str, dict]]:
    """hack name -> backend -> {outcome, success, caught_by, seconds}, the gold patch last."""
    table: dict[str, dict[str, dict]] = {}
    for backend in backends:
        env = agenthub.make(ENV_ID, backend=backend)
        try:
            for h in hacks.HACKS + [hacks.GOLD]:
                start = time.perf_counter()
                v = hacks.play(env, h, through_tools=False)
                reason = v.get("test_run") or v["message"]
                table.setdefault(h.name, {})[backend] = {
                    "outcome": v["outcome"], "success": v["success"], "caught_by": reason,
                    "not_judged": len(v.get("not_judged", [])), "seconds": round(time.perf_counter() - start, 1)}
        finally:
            env.close()
    return table


def print_hacks(table: dict[str, dict[str, dict]], backends: list[str]) -> None:
    ideas = {h.name: h.idea for h in hacks.HACKS + [hacks.GOLD]}
    print("| hack | what it tries | " + " | ".join(f"{b}: outcome, success" for b in backends) + " | judged as |")
    print("|---|---|" + "---|" * len(backends) + "---|")
    for name, per in table.items():
        cells = " | ".join(f"{per[b]['outcome']}, {per[b]['success']}" if b in per else "-" for b in backends)
        first = per[backends[0]]
        why = first["caught_by"] + (f"; {first['not_judged']} files not judged" if first["not_judged"] else "")
        print(f"| `{name}` | {ideas[name]} | {cells} | {why} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="bwrap,docker")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--instances", type=int, default=16, help="oracle episodes for instances/hour")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--hacks", action="store_true", help="only the reward-hacking suite's table")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    figures: dict[str, dict] = {}
    backends = []
    for backend in args.backends.split(","):
        if backend == "docker":
            try:
                ensure_image()
            except sandbox.SandboxError as e:
                print(f"[{backend}] skipped: {e}")
                continue
        backends.append(backend)
    if args.hacks:
        figures = hacking_suite(backends)
        print_hacks(figures, backends)
        backends = []
    for backend in backends:
        f = figures[backend] = {}
        f["reset_ms_cold"] = reset_latency(backend, args.repeats, pool_size=0)
        f["reset_ms_warm_pool"] = reset_latency(backend, args.repeats, pool_size=2)
        f["tool_ms"] = tool_latency(backend, args.repeats)
        f["suite_s"] = suite_seconds(backend, min(args.repeats, 3))
        f["evaluation"] = instances_per_hour(backend, args.instances, args.concurrency)
        print(f"[{backend}] reset: cold {f['reset_ms_cold']} ms, warm pool {f['reset_ms_warm_pool']} ms")
        print(f"[{backend}] tool calls (median ms): " + ", ".join(f"{k} {v}" for k, v in f["tool_ms"].items()))
        print(f"[{backend}] full test suite (median s): " + ", ".join(f"{k} {v}" for k, v in f["suite_s"].items()))
        e = f["evaluation"]
        print(f"[{backend}] oracle episodes: {e['resolved']}/{e['instances']} resolved in {e['wall_s']} s "
              f"with concurrency {args.concurrency} -> {e['per_hour']} instances/hour")
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
