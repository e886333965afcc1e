"""The env server's per-request path (issue 19, "the last overheads"): env calls on
`agenthub.env_workers` threads with a deadline, frames read without a pause per frame,
the server's startup heap frozen out of garbage collection, and the open-loop bench.
Real uvicorn servers and real WebSockets; the bench at a tiny size."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from websockets.sync.client import connect

import agenthub
from agenthub.client import RemoteEnv, RemoteEnvError
from agenthub.env import Env
from agenthub.env_workers import EnvCallRaised, EnvWorkers, Overdue
from agenthub.server import UNREAD_FRAMES, EnvServer, ServerThread
from test_server_soak import load_bench

ENV_ID = "tools/guess-number-v0"


class RaisingEnv(Env):
    """Its step raises what the action names: exceptions an awaiting coroutine must not
    see raised as they are."""

    RAISES = {"stop": StopIteration("no more"), "async-stop": StopAsyncIteration(), "exit": SystemExit(3),
              "interrupt": KeyboardInterrupt(), "plain": ValueError("just a value error")}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return [{"role": "user", "content": "go"}], {}

    def step(self, action):
        raise self.RAISES[action.text]


agenthub.register("testserver/raising-v0", entry_point=RaisingEnv, max_turns=50)


def throw(error):
    raise error


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def test_workers_return_results_and_exceptions():
    async def main():
        workers = EnvWorkers(2)
        assert await workers.run(lambda: threading.current_thread().name) != threading.current_thread().name
        assert await asyncio.gather(*(workers.run(lambda i=i: i * i, timeout=5) for i in range(50))) == \
            [i * i for i in range(50)]
        with pytest.raises(ZeroDivisionError):
            await workers.run(lambda: 1 / 0)
        assert workers.threads <= 2 and workers.pending == 0
        workers.close()
    run(main())


@pytest.mark.parametrize("kind", ["stop", "async-stop", "exit", "interrupt"])
def test_exceptions_a_coroutine_must_not_see_raised_come_back_as_EnvCallRaised(kind):
    async def main():
        workers = EnvWorkers(1)
        with pytest.raises(EnvCallRaised, match=type(RaisingEnv.RAISES[kind]).__name__):
            await workers.run(lambda: throw(RaisingEnv.RAISES[kind]), timeout=5)
        assert await workers.run(lambda: "still serving") == "still serving"
        workers.close()
    run(main())


def test_an_overdue_call_keeps_its_thread_and_the_others_still_run():
    release = threading.Event()

    async def main():
        workers = EnvWorkers(1)  # one thread, and the stuck call holds it
        with pytest.raises(Overdue) as caught:
            await workers.run(release.wait, timeout=0.1)
        returned = caught.value.returned
        assert not returned.done() and workers.overdue == 1
        start = time.monotonic()
        assert await workers.run(lambda: "fresh thread", timeout=5) == "fresh thread"
        assert time.monotonic() - start < 2 and workers.threads == 2
        release.set()
        await asyncio.wait_for(returned, 5)  # completes once the stuck call returns...
        assert workers.overdue == 0 and workers.threads == 1  # ...and the extra thread is let go
        assert await workers.run(lambda: "after", timeout=5) == "after"
        workers.close()
    run(main())


def test_a_call_cancelled_by_its_caller_is_dropped_quietly():
    async def main():
        workers = EnvWorkers(1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(workers.run(lambda: time.sleep(0.3)), 0.05)  # how the OpenEnv bridge waits
        assert await workers.run(lambda: "next") == "next"
        assert workers.pending == 0
        workers.close()
    run(main())


def test_the_server_answers_what_an_env_raises_as_env_errors_and_goes_on():
    with ServerThread(EnvServer("testserver/raising-v0", op_timeout=20)) as url:
        env = RemoteEnv(url, timeout=20)
        env.reset(seed=0)
        for kind, shown in (("stop", "StopIteration: no more"), ("async-stop", "StopAsyncIteration"),
                            ("exit", "SystemExit: 3"), ("interrupt", "KeyboardInterrupt"),
                            ("plain", "ValueError: just a value error")):
            start = time.monotonic()
            with pytest.raises(RemoteEnvError, match=shown):
                env.step(kind)
            assert time.monotonic() - start < 10  # answered, not left to the op timeout
        env.ping()
        env.close()


def test_pipelined_frames_are_all_answered_in_order():
    """More frames than UNREAD_FRAMES sent before reading any answer: reading pauses and
    resumes, every frame is answered once, in order, as in-process."""
    local = agenthub.make(ENV_ID)
    local.reset(seed=5)
    actions = [str(a) for a in (50, 25, 12, 6, 3, 1, 2, 60, 61, 62)]
    expected = []
    for action in actions:
        expected.append(json.loads(json.dumps(local.step(action))))
        if expected[-1][2] or expected[-1][3]:
            break
    with ServerThread(EnvServer(ENV_ID)) as url:
        with connect(url.replace("http://", "ws://") + "/session") as ws:
            json.loads(ws.recv(timeout=20))  # hello
            frames = [{"id": 0, "op": "reset", "seed": 5}] + \
                     [{"id": i + 1, "op": "step", "action": a} for i, a in enumerate(actions[:len(expected)])] + \
                     [{"id": f"p{i}", "op": "ping"} for i in range(3 * UNREAD_FRAMES)]
            for frame in frames:
                ws.send(json.dumps(frame))
            answers = [json.loads(ws.recv(timeout=20)) for _ in frames]
    assert [a["id"] for a in answers] == [f["id"] for f in frames]
    assert [a["result"] for a in answers[1:len(expected) + 1]] == expected
    assert all(a["result"] == "pong" for a in answers[len(expected) + 1:])


def test_open_loop_bench_reports_each_run_beside_the_echo_baseline():
    """Also: `agenthub serve` froze its startup heap (modules, the app, the probe env's
    imports) out of garbage collection, so no collection walks it again."""
    bench = load_bench()
    result = bench.run_open_loop(sessions=6, seconds=0.5, rate=16, warmup=0.3)
    runs = result["runs"]
    assert list(runs) == ["echo", "serve, 1 session", "serve, 6 sessions"]
    for name, figures in runs.items():
        assert figures["errors"] == 0, figures["first_error"]
        assert abs(figures["n"] - figures["sessions"] * 8) <= figures["sessions"]  # every due step, answered
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] <= figures["max_ms"]
        assert figures["server_cpu_ms_per_answer"] >= 0 and figures["client_cpu_ms_per_answer"] > 0
    assert len(result["load_average"]) == 4
    assert result["server"]["peak_sessions"] == 6 and result["server"]["timed_out"] == 0
    assert result["server"]["gc_frozen"] > 10_000  # `agenthub serve` froze its startup heap out of GC
