"""TextWorld and ALFWorld: the raw engines vs agenthub's wrapper, and reference agents;
and, for every family that runs here, what make/reset/step/close cycles leave behind.

    .venv/bin/python bench/envs.py [--families textworld,alfworld] [--episodes 20] [--json OUT.json]
    .venv/bin/python bench/envs.py --leaks 200 [--families textworld,alfworld,web,tools]

For each family, on the same cached games and the same command sequences (random
admissible commands recorded once through the wrapper):
- steps/s and reset latency of the raw engine (`textworld.start`, or TextWorld's
  `PddlEnv` + ALFWorld's `AlfredDemangler`, asked for the same information) and of
  `agenthub.make(...)` (the family env inside the episode contract), in-process;
  the wrapper's overhead is the ratio of the two times per step;
- resident memory per env, from the growth of this process's RSS while envs on
  different games are kept open;
- the oracle's and the random agent's success rates on test-split tasks.
With `--leaks N`, only the leak check (`leak_check`): N cycles per family, then the
processes, open file descriptors, threads and temporary files left, and RSS growth.
Figures are printed; nothing is asserted. Games are generated first if not cached.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from typing import Any, Callable

import psutil

import agenthub
from agenthub.agents.oracle import OracleAgent
from agenthub.agents.random import RandomAgent
from agenthub.environments.textworld.cache import ensure_game, pregenerate
from agenthub.runner import Episode, run_episodes

FAMILIES = {  # family -> (env id for the engine figures, suites for the agents)
    "textworld": ("textworld/w2-o3-q4-v0", ["textworld/w2-o3-q4", "textworld/w2-o3-q2to4", "textworld/w4-o6-q8"]),
    "alfworld": ("alfworld/all-v0", ["alfworld/all"]),
}


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def raw_engine(family: str, env: Any, seed: int) -> Any:
    """The engine behind the wrapper, started on the same game file, with the same infos."""
    game = ensure_game(env.unwrapped.game_source(seed), seed)
    if family == "textworld":
        import textworld
        infos = textworld.EnvInfos(admissible_commands=True, won=True, lost=True)
        return textworld.start(str(game.path / "game.z8"), request_infos=infos)
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
    from textworld.envs import PddlEnv
    engine = AlfredDemangler(PddlEnv(textworld.EnvInfos(admissible_commands=True, won=True)), shuffle=False)
    engine.load(str(game.path / "game.tw-pddl"))
    return engine


def record_commands(env: Any, seed: int, steps: int, rng: random.Random) -> list[str]:
    """Random admissible commands of one episode (until it ends or `steps` are played)."""
    _, info = env.reset(seed=seed)
    commands: list[str] = []
    while len(commands) < steps:
        commands.append(rng.choice(info["admissible_actions"]))
        _, _, terminated, truncated, info = env.step(commands[-1])
        if terminated or truncated:
            break
    return commands


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_engine(family: str, env_id: str, seeds: list[int], steps: int, repeats: int) -> dict[str, Any]:
    # No per-episode limit, so both sides play the same long command sequences.
    wrapper = agenthub.make(env_id, max_turns=10**6, turn_factor=None)
    rng = random.Random(0)
    scripts = {seed: record_commands(wrapper, seed, steps, rng) for seed in seeds}
    raw_step, wrap_step, raw_reset, wrap_reset, switch = [], [], [], [], []
    for seed, commands in scripts.items():
        raw = raw_engine(family, wrapper, seed)
        raw.reset()
        for _ in range(repeats):
            raw_reset.append(timed(raw.reset))
            raw_step.append(timed(lambda: [raw.step(c) for c in commands]) / len(commands))
            wrap_reset.append(timed(lambda: wrapper.reset(seed=seed)))
            wrap_step.append(timed(lambda: [wrapper.step(c) for c in commands]) / len(commands))
        raw.close()
    for a, b in zip(seeds, seeds[1:] + seeds[:1]):  # reset onto another (cached) game: loads it
        wrapper.reset(seed=a)
        switch.append(timed(lambda: wrapper.reset(seed=b)))
    wrapper.close()
    raw_s, wrap_s = statistics.median(raw_step), statistics.median(wrap_step)
    return {"env_id": env_id, "games": len(seeds), "steps_per_game": statistics.mean(map(len, scripts.values())),
            "raw_steps_per_s": round(1 / raw_s, 1), "wrapper_steps_per_s": round(1 / wrap_s, 1),
            "step_overhead_ratio": round(wrap_s / raw_s, 3),
            "raw_reset_ms": round(1000 * statistics.median(raw_reset), 1),
            "wrapper_reset_ms": round(1000 * statistics.median(wrap_reset), 1),
            "reset_overhead_ratio": round(statistics.median(wrap_reset) / statistics.median(raw_reset), 3),
            "wrapper_reset_other_game_ms": round(1000 * statistics.median(switch), 1)}


def bench_memory(family: str, env_id: str, seeds: list[int]) -> dict[str, Any]:
    """RSS growth per open env, each on its own game, measured in a fresh process per kind."""
    ctx = multiprocessing.get_context("spawn")
    out = {}
    for kind in ("raw", "wrapper"):
        with ctx.Pool(1) as pool:
            out[f"{kind}_mb_per_env"] = pool.apply(_memory_probe, (family, env_id, seeds, kind))
    return out


def _memory_probe(family: str, env_id: str, seeds: list[int], kind: str) -> float:
    probe = agenthub.make(env_id)
    raw_engine(family, probe, seeds[0]).close()  # import everything before measuring
    envs: list[Any] = []
    before = rss_mb()
    for seed in seeds:
        if kind == "raw":
            envs.append(raw_engine(family, probe, seed))
            envs[-1].reset()
        else:
            envs.append(agenthub.make(env_id))
            envs[-1].reset(seed=seed)
    return round((rss_mb() - before) / len(seeds), 2)


def bench_agents(suite: str, episodes: int) -> dict[str, Any]:
    tasks = agenthub.load_suite(suite, "test", limit=episodes)
    runs = [Episode(t.env_id, t.seed) for t in tasks]
    out: dict[str, Any] = {"suite": f"{suite}:test", "tasks": len(tasks)}
    for name, agent in (("oracle", OracleAgent()), ("random", RandomAgent(seed=0))):
        trajectories = run_episodes(runs, agent, concurrency=1)
        out[f"{name}_success_rate"] = round(statistics.mean(t.success for t in trajectories), 3)
        out[f"{name}_mean_turns"] = round(statistics.mean(len(t.turns) for t in trajectories), 1)
        out[f"{name}_errors"] = sum(t.stop_reason == "error" for t in trajectories)
    return out


# family -> (env id, make kwargs, seeds to cycle through): one episode of each kind a family runs
LEAK_TARGETS: dict[str, list[tuple[str, dict[str, Any], int]]] = {
    "textworld": [("textworld/w2-o3-q4-v0", {}, 3)],
    "alfworld": [("alfworld/pick-and-place-v0", {}, 2)],
    "web": [("web/click-test-v0", {}, 2)],
    "tools": [("tools/compute-v0", {"kinds": ["python"]}, 5), ("tools/search-qa-v0", {}, 5),
              ("tools/guess-number-v0", {}, 5)],
}


def _footprint(me: psutil.Process, tmp: str, made_dirs: list[str]) -> dict[str, Any]:
    """What this process holds now: live processes it started (its descendants, and any
    process anywhere whose TMPDIR lies in `tmp`, which catches those that left the tree),
    open fds, threads, files in `tmp` and the directories in `made_dirs` still there."""
    live = {p.pid for p in me.children(recursive=True) if _running(p)}
    for proc in psutil.process_iter():
        try:
            if proc.pid != me.pid and (proc.environ().get("TMPDIR") or "").startswith(tmp) and _running(proc):
                live.add(proc.pid)
        except psutil.Error:  # gone, or not ours to read
            pass
    return {"processes": live, "fds": me.num_fds(), "threads": me.num_threads(), "tmp": set(os.listdir(tmp)),
            "dirs": {d for d in made_dirs if os.path.exists(d)}, "mapped": _mapped_files(),
            "rss_mb": me.memory_info().rss / 2**20}


def _mapped_files() -> set[str]:
    """Files mapped into this process: shared libraries loaded (and never unloaded) show here,
    as does TextWorld's PDDL engine's private copy of fast-downward's library."""
    with open("/proc/self/maps") as f:
        return {parts[5] for line in f if len(parts := line.split(maxsplit=5)) == 6 and parts[5].startswith("/")}


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def leak_check(family: str, cycles: int, settle_s: float = 5.0) -> dict[str, Any]:
    """`cycles` make/reset/step/close cycles of each of the family's envs (the first
    step of the oracle's plan), after one warm-up cycle per seed; then what is left
    compared with before: processes still running (waited for up to `settle_s`), open
    file descriptors, threads, temporary files (TMPDIR points to a private directory
    for the check), directories made with `tempfile.mkdtemp` anywhere (sandboxes keep
    their work dirs in /dev/shm), files mapped into memory (libraries loaded and never
    unloaded) and RSS growth."""
    me = psutil.Process()
    tmp = tempfile.mkdtemp(prefix="agenthub-leaks-")
    made_dirs: list[str] = []
    mkdtemp = tempfile.mkdtemp

    def recording_mkdtemp(*args: Any, **kwargs: Any) -> str:
        made_dirs.append(mkdtemp(*args, **kwargs))
        return made_dirs[-1]

    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = tmp, tmp  # every temporary file of the envs lands here
    tempfile.mkdtemp = recording_mkdtemp  # type: ignore[assignment]
    try:
        def cycle(env_id: str, kwargs: dict[str, Any], seed: int) -> None:
            env = agenthub.make(env_id, **kwargs)
            try:
                env.reset(seed=seed)
                env.step(env.oracle_actions()[0])
            finally:
                env.close()

        targets = LEAK_TARGETS[family]
        for env_id, kwargs, seeds in targets:  # warm up: imports, caches, generated games
            for seed in range(seeds):
                cycle(env_id, kwargs, seed)
        gc.collect()
        before = _footprint(me, tmp, made_dirs)
        start = time.perf_counter()
        for i in range(cycles):
            for env_id, kwargs, seeds in targets:
                cycle(env_id, kwargs, i % seeds)
        elapsed = time.perf_counter() - start
        gc.collect()
        deadline = time.monotonic() + settle_s
        while (after := _footprint(me, tmp, made_dirs))["processes"] - before["processes"] \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        return {"family": family, "envs": [t[0] for t in targets], "cycles": cycles,
                "seconds_per_cycle": round(elapsed / cycles, 3),
                "processes_left": len(after["processes"] - before["processes"]),
                "fds_left": after["fds"] - before["fds"], "threads_left": after["threads"] - before["threads"],
                "tmp_entries_left": sorted(after["tmp"] - before["tmp"]),
                "dirs_left": sorted(after["dirs"] - before["dirs"]), "tmp_dir": tmp,
                "mapped_files_left": len(after["mapped"] - before["mapped"]),
                "rss_growth_mb": round(after["rss_mb"] - before["rss_mb"], 1)}
    finally:
        tempfile.mkdtemp = mkdtemp  # type: ignore[assignment]
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[1]
        try:
            os.rmdir(tmp)
        except OSError:  # something was left: keep it for inspection (reported above)
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="textworld,alfworld")
    parser.add_argument("--episodes", type=int, default=20, help="test tasks per family for the agents")
    parser.add_argument("--games", type=int, default=3, help="games for the engine figures")
    parser.add_argument("--steps", type=int, default=40, help="commands per game for the engine figures")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2, help="for generating missing games")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--leaks", type=int, metavar="CYCLES", help="only the leak check, this many cycles per family")
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": f"{os.cpu_count()} CPUs"}
    if args.leaks:
        for family in args.families.split(","):
            results[family] = leak_check(family, args.leaks)
            print(json.dumps({family: results[family]}, indent=2), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
        return
    for family in args.families.split(","):
        env_id, suites = FAMILIES[family]
        seeds = list(range(args.games))
        pregenerate(env_id, seeds, processes=args.processes)
        for suite in suites:
            tasks = agenthub.load_suite(suite, "test", limit=args.episodes)
            pregenerate(tasks[0].env_id, [t.seed for t in tasks], processes=args.processes)
        results[family] = {**bench_engine(family, env_id, seeds, args.steps, args.repeats),
                           **bench_memory(family, env_id, seeds),
                           "agents": [bench_agents(suite, args.episodes) for suite in suites]}
        print(json.dumps({family: results[family]}, indent=2), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
