"""Timing helpers the bench scripts share (run as `python bench/NAME.py`, so this file's
folder is on sys.path and `from timing import ...` finds it)."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: bool = False) -> float:
    """Median wall time of `repeats` calls of `fn` (after one untimed call if `warmup`)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def percentiles_ms(seconds: list[float], digits: int = 1) -> dict[str, float]:
    """p50, p95 and p99 of latencies given in seconds, in milliseconds."""
    ms = sorted(1000 * s for s in seconds)
    return {"p50_ms": round(statistics.median(ms), digits), "p95_ms": round(ms[round(0.95 * (len(ms) - 1))], digits),
            "p99_ms": round(ms[round(0.99 * (len(ms) - 1))], digits), "n": len(ms)}
