"""The env server under abuse, at test scale: 64 well-behaved guess-number sessions held
at once, alone and then beside 16 abusive clients (garbage frames, vanishing
mid-episode, silent sessions, oversized frames), against a real `agenthub serve`. Every
well-behaved episode matches the in-process one; every abuser is answered, closed or
reaped; no session is left; after the abused run the server's memory is back within
10% of where the quiet run left it (bench/server.py says why not of its cold size).
This is `bench/server.py --abuse` (1,024 sessions there) at a small size."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_bench():
    sys.path.insert(0, str(BENCH))  # the bench imports its sibling `timing`
    try:
        spec = importlib.util.spec_from_file_location("bench_server", BENCH / "server.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_64_sessions_beside_abusers():
    bench = load_bench()
    result = bench.run_abuse(good=64, abusers=16, episodes=1)
    quiet, abused = result["runs"]["without abuse"], result["runs"]["with abuse"]
    for run in (quiet, abused):
        assert run["failures"] == [] and run["good_correct"] == 64
        assert run["all_sessions_released"]
    assert quiet["sessions_held"] >= 64 and abused["sessions_held"] > 64
    outcomes = abused["abusers"]
    assert set(outcomes["garbage"]) == {"answered bad_request"}
    assert set(outcomes["vanish"]) == {"vanished mid-episode"}
    assert outcomes["silent"] == {"reaped (idle, 4000)": 4}
    assert set(outcomes["oversized"]) == {"closed 1009 (too big)"}
    assert result["server"]["sessions"] == 0 and result["server"]["stale_calls"] == 0
    assert result["server"]["reaped"] >= 4
    assert result["server"]["bad_requests"] == sum(outcomes["garbage"].values())
    assert result["memory"]["end_vs_after_quiet"] <= 1.10, result["memory"]  # abuse leaves nothing behind
