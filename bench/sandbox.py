"""Sandbox latency per backend: start, first exec, exec and close (p50/p95), cold starts
vs a warm pool, and a containerised env's start, cold vs pooled. Each backend's exec is
set side by side with its raw baseline, measured in the same run, interleaved with it
(so that load on the machine hits both alike): `sh -c true` for local, a bare
`bwrap --unshare-all --ro-bind / / true` for bwrap, `docker exec CONTAINER true` for
docker; the ratio is exec p50 / baseline p50. With `--leaks N`: N open/exec/file/close
cycles per backend and what they left behind (processes, containers, volumes, cgroups,
work dirs, file descriptors), instead of latencies.

    nice -n 10 .venv/bin/python bench/sandbox.py [--backends local,bwrap,docker] [--repeats 20] [--json OUT.json]
    .venv/bin/python bench/sandbox.py --leaks 200 [--backends ...]

Figures are printed (milliseconds) with the load average seen; nothing is asserted.
Docker needs a daemon and the base image (built on first use).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
import uuid
from typing import Any, Callable

from timing import percentiles_ms

from agenthub import sandbox


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def raw_baseline(backend: str, box: Any) -> list[str]:
    """The bare command an exec of `true` is compared with (see the module doc)."""
    if backend == "local":
        return ["sh", "-c", "true"]
    if backend == "bwrap":
        return [shutil.which("bwrap") or "bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"]
    return [shutil.which("docker") or "docker", "exec", box.container.id, "true"]


def bench_backend(backend: str, repeats: int, options: dict[str, Any]) -> dict[str, Any]:
    start, first, execs, raw, close = [], [], [], [], []
    shown = ""
    for _ in range(repeats):
        dt, box = timed(lambda: sandbox.open(backend, **options))
        start.append(dt)
        first.append(timed(lambda: box.exec("true", timeout=30))[0])  # bwrap, local: starts the exec server
        baseline = raw_baseline(backend, box)
        shown = " ".join(arg if len(arg) < 40 else arg[:12] for arg in baseline)  # a container id, shortened
        for _ in range(5):
            raw.append(timed(lambda: subprocess.run(baseline, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                    check=True))[0])
            execs.append(timed(lambda: box.exec("true", timeout=30))[0])
        close.append(timed(box.close)[0])
    warm = []
    with sandbox.Pool.of_sandboxes(backend, size=2, **options) as pool:
        for _ in range(repeats):
            pool.wait_ready(timeout=120)  # measure a warm hit, as when resets are spaced out
            dt, box = timed(pool.acquire)
            warm.append(dt)
            box.close()
        hits = pool.hits
    return {"start": percentiles_ms(start), "first_exec": percentiles_ms(first), "exec": percentiles_ms(execs),
            "raw_baseline": percentiles_ms(raw), "baseline_command": shown,
            "close": percentiles_ms(close), "pool_acquire": percentiles_ms(warm), "pool_hits": hits}


def print_side_by_side(results: dict[str, Any]) -> None:
    print(f"{'backend':<9}{'exec p50':>10}{'p95':>8}{'raw p50':>10}{'p95':>8}{'ratio':>8}  raw baseline")
    for backend, f in results.items():
        if "raw_baseline" in f:
            e, r = f["exec"], f["raw_baseline"]
            print(f"{backend:<9}{e['p50_ms']:>10}{e['p95_ms']:>8}{r['p50_ms']:>10}{r['p95_ms']:>8}"
                  f"{e['p50_ms'] / max(r['p50_ms'], 1e-9):>8.2f}  {f['baseline_command']}")


def bench_containerized(repeats: int) -> dict[str, Any]:
    import agenthub
    from agenthub.containerized import container_pool

    env_id = "tools/guess-number-v0"
    cold, warm = [], []
    for _ in range(repeats):
        dt, env = timed(lambda: agenthub.make(env_id, sandbox="docker"))
        cold.append(dt)
        env.close()
    with container_pool(env_id, size=2) as pool:
        for _ in range(repeats):
            pool.wait_ready(timeout=120)
            dt, env = timed(lambda: agenthub.make(env_id, sandbox="docker", pool=pool))
            warm.append(dt)
            env.close()
    return {"make_cold": percentiles_ms(cold), "make_from_pool": percentiles_ms(warm)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="local,bwrap,docker")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--leaks", type=int, metavar="N", help="leak check: N cycles per backend")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for backend in args.backends.split(","):
        options: dict[str, Any] = {}
        if backend == "docker":
            from agenthub.sandbox.images import ensure_base_image
            options["image"] = ensure_base_image()
        if args.leaks:
            from agenthub.sandbox import leaks
            marker = f"{uuid.uuid4().int % 10**6}{os.getpid()}"
            results[backend] = leaks.cycle(backend, args.leaks, marker, **options).figures()
            print(json.dumps(results[backend]))
        else:
            results[backend] = bench_backend(backend, args.repeats, options)
    if not args.leaks:
        if "docker" in results:
            results["containerized_env"] = bench_containerized(max(3, args.repeats // 4))
        print(f"{'backend':<18}{'what':<16}{'p50 ms':>9}{'p95 ms':>9}{'n':>5}")
        for backend, figures in results.items():
            for what, f in figures.items():
                if isinstance(f, dict):
                    print(f"{backend:<18}{what:<16}{f['p50_ms']:>9}{f['p95_ms']:>9}{f['n']:>5}")
        print()
        print_side_by_side(results)
        results["load_average"] = os.getloadavg()
        print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.2f}" for x in results["load_average"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)

if __name__ == "__main__":
    main()
