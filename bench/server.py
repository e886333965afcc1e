"""Remote env vs in-process: steps/s and step latency (p50/p95) for 1, 16 and 64
concurrent sessions of `tools/guess-number-v0`, one client thread per session.

    .venv/bin/python bench/server.py [--sessions 1,16,64] [--steps 200] [--json OUT.json]

The server is `agenthub serve` in its own process (as users run it), so client and
server do not share a GIL. Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from typing import Any, Callable

from timing import percentiles_ms

import agenthub

ENV_ID = "tools/guess-number-v0"


def drive(make_env: Callable[[], Any], sessions: int, steps: int) -> dict[str, float]:
    """`sessions` threads each take `steps` steps (resetting at episode end)."""
    latencies: list[float] = []
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()
    ready = threading.Barrier(sessions)

    def worker(seed: int) -> None:
        env = make_env()
        env.reset(seed=seed)
        mine = []
        ready.wait()
        start = time.perf_counter()
        for i in range(steps):
            t0 = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(str(1 + (seed * 7 + i * 13) % 64))
            mine.append(time.perf_counter() - t0)
            if terminated or truncated:
                env.reset(seed=seed + i)
        end = time.perf_counter()
        env.close()
        with lock:
            latencies.extend(mine)
            spans.append((start, end))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = max(e for _, e in spans) - min(s for s, _ in spans)  # resets included, connects not
    return {"steps_per_s": round(len(latencies) / wall, 1), **percentiles_ms(latencies, digits=2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,16,64")
    parser.add_argument("--steps", type=int, default=200, help="steps per session")
    parser.add_argument("--json")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "agenthub", "serve", ENV_ID, "--port", "0",
                               "--max-sessions", "256"], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().split(" at ")[1].split()[0]  # type: ignore[union-attr]
        results = {}
        for n in (int(x) for x in args.sessions.split(",")):
            results[n] = {"in_process": drive(lambda: agenthub.make(ENV_ID), n, args.steps),
                          "remote": drive(lambda: agenthub.RemoteEnv(url, ENV_ID), n, args.steps)}
    finally:
        server.terminate()
        server.wait()
    print(f"{'sessions':>8}  {'where':<11}{'steps/s':>10}{'p50 ms':>9}{'p95 ms':>9}")
    for n, by_where in results.items():
        for where, f in by_where.items():
            print(f"{n:>8}  {where:<11}{f['steps_per_s']:>10}{f['p50_ms']:>9}{f['p95_ms']:>9}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
