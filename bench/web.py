"""Web envs in headless Chromium: latency, memory per browser, leaks, and agents' success.

    .venv/bin/python bench/web.py [--episodes 20] [--cycles 200] [--json OUT.json]

- latency: browser start (first reset), reset, and steps by tool (p50/p95, ms);
- memory: PSS of each open browser's process tree with 1, 2 and 3 envs open;
- leaks: `--cycles` make/reset/step/close cycles: each browser's processes still running
  after its close, private directories left, and this process's RSS across the cycles;
- success: the oracle and the random agent on `--episodes` test episodes of each task.
Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import tempfile
import time
from typing import Any

import psutil

from timing import percentiles_ms

import agenthub
from agenthub.agents import load_agent
from agenthub.environments.web import TASKS
from agenthub.runner import Episode, run_episodes
from agenthub.types import tool_calls_message


def browser_pss_mb(env: Any) -> float:
    """PSS of one env's browser: chromedriver and every process it started."""
    total = 0
    for proc in env.unwrapped._browser.processes():
        try:
            total += proc.memory_full_info().pss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def latency(repeats: int = 30) -> dict[str, Any]:
    starts, resets, steps = [], [], {"click": [], "type": [], "select": [], "click_xy": []}
    for task in ("enter-text", "choose-list"):
        env = agenthub.make(f"web/{task}-v0")
        t0 = time.perf_counter()
        env.reset(seed=0)
        starts.append(time.perf_counter() - t0)
        for seed in range(repeats):
            t0 = time.perf_counter()
            env.reset(seed=seed)
            resets.append(time.perf_counter() - t0)
            page = env.unwrapped.page
            field = (page.find("textbox") or page.find("select"))[0]
            x, y = field.center
            plan = [("click_xy", {"x": x, "y": y}), ("click", {"ref": field.ref})]
            plan.append(("type", {"ref": field.ref, "text": "hello"}) if task == "enter-text"
                        else ("select", {"ref": field.ref, "option": field.options[-1]}))
            for name, args in plan:  # one call per step: each step's time includes reading the page back
                t0 = time.perf_counter()
                env.step(tool_calls_message([(name, args)]))
                steps[name].append(time.perf_counter() - t0)
        env.close()
    return {"browser_start": percentiles_ms(starts), "reset": percentiles_ms(resets),
            **{f"step_{k}": percentiles_ms(v) for k, v in steps.items()}}


def memory() -> dict[str, Any]:
    envs, per_browser = [], []
    for i in range(3):
        env = agenthub.make("web/click-button-v0")
        env.reset(seed=i)
        envs.append(env)
        per_browser.append([round(browser_pss_mb(e), 1) for e in envs])
    for env in envs:
        env.close()
    return {"pss_mb_per_browser_with_1_2_3_open": per_browser,
            "mean_pss_mb_per_browser": round(statistics.mean(per_browser[-1]), 1)}


def leaks(cycles: int) -> dict[str, Any]:
    me = psutil.Process()
    dirs_before = set(glob.glob(f"{tempfile.gettempdir()}/agenthub-chromium-*"))
    rss, left_after_close, processes_per_browser = [], 0, []
    for i in range(cycles):
        env = agenthub.make("web/click-test-v0")
        env.reset(seed=i)
        env.step(env.oracle_actions()[0])
        browser = env.unwrapped._browser
        processes_per_browser.append(len(browser.processes()))
        env.close()
        left_after_close += len(browser.processes())
        rss.append(me.memory_info().rss / 2**20)
        if (i + 1) % 50 == 0:
            print(f"  {i + 1} cycles, rss {rss[-1]:.0f} MB", flush=True)
    time.sleep(3)  # let init reap the exited processes of the last browsers
    zombies = [p for p in psutil.process_iter(["name", "status"])
               if "chrom" in (p.info["name"] or "") and p.info["status"] == psutil.STATUS_ZOMBIE]
    return {"cycles": cycles, "processes_per_browser": statistics.median(processes_per_browser),
            "processes_left_after_close": left_after_close, "chromium_zombies_on_machine_3s_later": len(zombies),
            "private_dirs_left": len(set(glob.glob(f"{tempfile.gettempdir()}/agenthub-chromium-*")) - dirs_before),
            "rss_mb_at_cycle_10": round(rss[min(9, len(rss) - 1)], 1), "rss_mb_at_end": round(rss[-1], 1)}


class _KeepOpen(agenthub.Wrapper):
    """Lets the runner reuse one browser per task: its per-episode close is skipped."""

    def close(self) -> None:
        pass


def success(episodes_per_task: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for agent_name in ("oracle", "random"):
        agent = load_agent(agent_name)
        per_task = {}
        for task in TASKS:
            env = agenthub.make(f"web/{task}-v0")
            tasks = agenthub.load_suite(f"web/{task}", "test", limit=episodes_per_task)
            trajectories = run_episodes([Episode(t.env_id, t.seed) for t in tasks], agent, concurrency=1,
                                        make_env=lambda *_a, **_k: _KeepOpen(env))
            env.close()
            errors = [t.error for t in trajectories if t.stop_reason == "error"]
            per_task[task] = round(statistics.mean(t.success for t in trajectories), 3)
            if errors:
                print(f"  {agent_name} {task}: {len(errors)} errors, e.g. {errors[0][:200]}")
        out[agent_name] = {"per_task": per_task, "mean": round(statistics.mean(per_task.values()), 3)}
        print(f"  {agent_name}: mean success {out[agent_name]['mean']:.3f} {per_task}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=20, help="test episodes per task and agent")
    parser.add_argument("--cycles", type=int, default=200, help="make/reset/close cycles for the leak check")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    results = {}
    for name, run in (("latency", latency), ("memory", memory), ("leaks", lambda: leaks(args.cycles)),
                      ("success", lambda: success(args.episodes))):
        print(f"{name} ...", flush=True)
        t0 = time.perf_counter()
        results[name] = run()
        print(json.dumps(results[name], indent=1), f"({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
