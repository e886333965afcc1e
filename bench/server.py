"""The env server under load, three modes.

    .venv/bin/python bench/server.py [--sessions 1,16,64] [--steps 200] [--json OUT.json]
    .venv/bin/python bench/server.py --abuse [--good 1024] [--abusers 64] [--episodes 2] [--json OUT.json]
    .venv/bin/python bench/server.py --open-loop [--sessions 1024] [--seconds 20] [--rate 1] [--json OUT.json]

Default mode: remote env vs in-process, steps/s and step latency for 1, 16 and 64
concurrent sessions of `tools/guess-number-v0`, one client thread per session.

`--abuse` (the soak of issue 14): `--good` well-behaved sessions of guess-number held
at once, each playing `--episodes` oracle episodes and checking every answer against
the same episode played in-process; first alone, then again while `--abusers` clients
(a quarter of each kind) send garbage frames, vanish mid-episode, open a session and
never send, or send frames over the size limit. Prints, side by side, the sessions the
server held at most, steps/s and p50/p95/p99 latency of the well-behaved clients, what
became of every abuser, and the server's resident memory at start, at peak and after
every client left (the server hands freed memory back once it holds no session). The
first burst of sessions leaves the server above its cold size for good: CPython's small-
object allocator keeps a 1 MiB arena as long as any object in it lives, so the burst's
high-water mark stays mapped although tracemalloc finds no live growth; what is judged
is that the abused run, after the quiet one, leaves no more behind.

`--open-loop` (issue 19): N sessions held at once, each stepping `--rate` times a second
on its own schedule (phases spread evenly over the period), whatever the answers' delay:
latency is counted from when a step was due, so a late answer also delays (and counts
against) the next one. The load runs three times, driven from this process: against a
bare echo endpoint on the same stack (uvicorn, the same websocket settings; it answers
each frame with a canned step answer of the same size), then against one `agenthub
serve` process with one session, then with N. Side by side: p50/p95/p99/max, answers
per second, each run's ratio to the echo, and the server's and the client's CPU time
per answer (which the machine's other load moves far less than it moves latency).

In all modes the server is `agenthub serve` in its own process, as users run it.
Figures are printed; `run_abuse` and `run_open_loop` return them for the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
from typing import Any, Callable

from fastapi import FastAPI, WebSocket  # module level: FastAPI resolves the endpoint's annotations here
from timing import percentiles_ms

import agenthub

ENV_ID = "tools/guess-number-v0"
ABUSER_KINDS = ("garbage", "vanish", "silent", "oversized")
IDLE_TIMEOUT = 4.0  # the soak server's --idle-timeout: silent sessions are reaped after this
MAX_FRAME = 256 * 1024  # the soak server's --max-frame-bytes
GARBAGE = ['{"id": 1, "op": ["step"]}', '{"id": 2, "op": "step", "action": 7}', '{"op": "reset", "seed": -1}',
           '{"op": "reset", "options": "x"}', "[1, 2]", "null", "not json", "[" * 50_000, '{"id": ' + "9" * 5000 + "}",
           '{"id": {"a": []}, "op": "ping"}', b"\x00\xffbinary", b'{"op": "ping"}']


# --- default mode: threads with RemoteEnv --------------------------------------------

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


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    """`agenthub serve ENV_ID --port 0 ARGS` in its own process; (process, URL)."""
    server = subprocess.Popen([sys.executable, "-m", "agenthub", "serve", ENV_ID, "--port", "0", *args],
                              stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()  # type: ignore[union-attr]
    if " at " not in line:
        server.kill()
        raise RuntimeError(f"agenthub serve did not start: {line!r}")
    return server, line.split(" at ")[1].split()[0]


# --- abuse mode: asyncio clients -----------------------------------------------------

def expected_episodes(seeds: list[int]) -> dict[int, tuple[list[Any], list[Any]]]:
    """seed -> (oracle actions, the answers an in-process env gives them: reset first),
    as they look after a JSON round trip."""
    env = agenthub.make(ENV_ID)
    out = {}
    for seed in seeds:
        first = env.reset(seed=seed)
        actions = env.oracle_actions()
        answers = [first] + [env.step(a) for a in actions]
        out[seed] = (actions, json.loads(json.dumps(answers)))
    return out


class Soak:
    """One run of well-behaved clients (and optionally abusers) against a server at `url`."""

    def __init__(self, url: str, good: int, episodes: int, abusers: int, expected: dict[int, Any]):
        self.ws_url = url.replace("http://", "ws://") + "/session"
        self.good, self.episodes, self.abusers, self.expected = good, episodes, abusers, expected
        self.latencies: list[float] = []
        self.correct = 0
        self.failures: list[str] = []
        self.outcomes: dict[str, dict[str, int]] = {kind: {} for kind in ABUSER_KINDS}
        self.all_connected = asyncio.Event()
        self.good_done = asyncio.Event()
        self.connected = 0

    def _connect(self) -> Any:
        from websockets.asyncio.client import connect
        return connect(self.ws_url, max_size=None, open_timeout=120, proxy=None)

    async def _call(self, ws: Any, rid: int, **request: Any) -> Any:
        t0 = time.perf_counter()
        await ws.send(json.dumps({"id": rid, **request}))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 120))
        self.latencies.append(time.perf_counter() - t0)
        if answer.get("id") != rid or not answer.get("ok"):
            raise RuntimeError(f"bad answer to {request.get('op')}: {str(answer)[:200]}")
        return answer["result"]

    async def good_client(self, index: int) -> None:
        try:
            async with self._connect() as ws:
                json.loads(await ws.recv())  # hello
                self.connected += 1
                if self.connected == self.good:
                    self.all_connected.set()
                await asyncio.wait_for(self.all_connected.wait(), 300)
                rid = 0
                for k in range(self.episodes):
                    seed = index * self.episodes + k
                    actions, answers = self.expected[seed]
                    got = [await self._call(ws, rid := rid + 1, op="reset", seed=seed)]
                    for action in actions:
                        got.append(await self._call(ws, rid := rid + 1, op="step", action=action))
                    if got != answers:
                        raise RuntimeError(f"seed {seed}: the episode differs from in-process")
            self.correct += 1
        except Exception as e:
            self.failures.append(f"client {index}: {type(e).__name__}: {str(e)[:200]}")
            self.all_connected.set()  # do not hold the others at the barrier

    def _note(self, kind: str, outcome: str) -> None:
        self.outcomes[kind][outcome] = self.outcomes[kind].get(outcome, 0) + 1

    async def abuser(self, kind: str, index: int) -> None:
        """Abuse until the well-behaved clients are done; every round's outcome is noted."""
        rng = random.Random(index)
        while not self.good_done.is_set():
            try:
                await getattr(self, f"_{kind}")(rng)
            except Exception as e:
                self._note(kind, f"unexpected {type(e).__name__}: {str(e)[:80]}")
            if kind == "silent":
                return  # one session, held until the server reaps it

    async def _garbage(self, rng: random.Random) -> None:
        async with self._connect() as ws:
            await ws.recv()
            for frame in rng.sample(GARBAGE, 4) + [bytes(rng.randrange(256) for _ in range(64))]:
                await ws.send(frame)
                answer = json.loads(await asyncio.wait_for(ws.recv(), 120))
                self._note("garbage", "answered bad_request" if answer["error"]["kind"] == "bad_request"
                           else f"answered {answer['error']['kind']}")
            await ws.send(json.dumps({"id": "p", "op": "ping"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 120))["result"] == "pong"

    async def _vanish(self, rng: random.Random) -> None:
        ws = await self._connect()
        await ws.recv()
        await ws.send(json.dumps({"id": 1, "op": "reset", "seed": rng.randrange(1000)}))
        await ws.recv()
        await ws.send(json.dumps({"id": 2, "op": "step", "action": "32"}))
        ws.transport.abort()  # gone mid-episode, no close frame
        self._note("vanish", "vanished mid-episode")
        await asyncio.sleep(0.05)

    async def _silent(self, rng: random.Random) -> None:
        from websockets.exceptions import ConnectionClosed
        async with self._connect() as ws:
            await ws.recv()
            try:
                while True:
                    message = await asyncio.wait_for(ws.recv(), IDLE_TIMEOUT * 10)
                    if json.loads(message).get("type") == "closing":
                        continue  # the server says why, then closes
            except ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd else None
                self._note("silent", "reaped (idle, 4000)" if code == 4000 else f"closed with {code}")

    async def _oversized(self, rng: random.Random) -> None:
        from websockets.exceptions import ConnectionClosed
        async with self._connect() as ws:
            await ws.recv()
            await ws.send(json.dumps({"id": 1, "op": "step", "action": "x" * (MAX_FRAME + rng.randrange(1000))}))
            try:
                await asyncio.wait_for(ws.recv(), 120)
                self._note("oversized", "answered (not closed)")
            except ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd else None
                self._note("oversized", "closed 1009 (too big)" if code == 1009 else f"closed with {code}")

    async def run(self) -> dict[str, Any]:
        kinds = [ABUSER_KINDS[i % len(ABUSER_KINDS)] for i in range(self.abusers)]
        abuse = [asyncio.create_task(self.abuser(kind, i)) for i, kind in enumerate(kinds)]
        start = time.perf_counter()
        await asyncio.gather(*(self.good_client(i) for i in range(self.good)))
        wall = time.perf_counter() - start
        self.good_done.set()
        await asyncio.gather(*abuse)
        return {"good_correct": self.correct, "good": self.good, "failures": self.failures[:5],
                "steps_per_s": round(len(self.latencies) / wall, 1), "wall_s": round(wall, 2),
                **percentiles_ms(self.latencies, digits=2),
                "abusers": {k: v for k, v in self.outcomes.items() if v}}


# --- open-loop mode: every session steps on its own clock ----------------------------

def echo_serve() -> None:
    """A bare endpoint on the env server's stack (`--echo-serve`, a subprocess of the
    open-loop run): hello, then every frame is answered with a canned step answer of the
    size guess-number gives, under the request's id."""
    from agenthub.server import _uvicorn_server, bind_socket, url_of
    from agenthub.wire import to_json

    env = agenthub.make(ENV_ID)
    env.reset(seed=0)
    tail = to_json({"ok": True, "result": env.step("32")})[1:]  # '"ok": ..., "result": ...}'
    app = FastAPI()

    @app.websocket("/session")
    async def session(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(to_json({"type": "hello", "session": "echo"}))
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            rid = json.loads(message["text"]).get("id")
            await websocket.send_text(f'{{"id": {json.dumps(rid)}, {tail}')

    sock = bind_socket("127.0.0.1", 0)
    print(f"echo at {url_of(sock)}", flush=True)
    _uvicorn_server(app, 20).run(sockets=[sock])


async def open_loop(url: str, sessions: int, seconds: float, rate: float, warmup: float,
                    server_pid: int | None = None) -> dict[str, Any]:
    """`sessions` websocket sessions on `url`, each sending one step every 1/`rate` s
    (phase i/sessions of the period) for `warmup` + `seconds`; latencies of the last
    `seconds`, counted from when each step was due. A session whose episode ended
    resets instead of stepping (counted alike). With `server_pid`, also the server's CPU
    time per answer over the measured seconds (which the machine's load moves far less than
    latency; a backlogged server spends a little less per answer, its wake-ups batched)."""
    from websockets.asyncio.client import connect

    ws_url = url.replace("http://", "ws://") + "/session"
    gate = asyncio.Semaphore(32)  # connect in waves: a burst of 1,024 handshakes is not the subject

    async def open_session(i: int) -> Any:
        async with gate:
            ws = await connect(ws_url, max_size=None, open_timeout=300, proxy=None, compression=None)
            await ws.recv()  # hello
            await ws.send(json.dumps({"id": 0, "op": "reset", "seed": i}))
            await ws.recv()
            return ws

    conns = await asyncio.gather(*(open_session(i) for i in range(sessions)))
    loop = asyncio.get_running_loop()
    period = 1 / rate
    start = loop.time() + 0.5
    measured_from, end = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    errors: list[str] = []

    async def drive_one(i: int, ws: Any) -> None:
        rid, over = 0, False
        due = start + period * i / sessions
        while due < end:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            rid += 1
            request = {"id": rid, "op": "reset", "seed": i + rid} if over else \
                {"id": rid, "op": "step", "action": str(1 + (i * 7 + rid * 13) % 64)}
            await ws.send(json.dumps(request))
            answer = json.loads(await ws.recv())
            if due >= measured_from:
                latencies.append(loop.time() - due)
            if not answer.get("ok") or answer.get("id") != rid:
                errors.append(str(answer)[:200])
            result = answer.get("result")
            over = isinstance(result, list) and len(result) == 5 and bool(result[2] or result[3])
            due += period

    cpu: list[float] = []  # CPU seconds used so far: [server, client] at the window's start, then at its end
    sample = lambda: cpu.extend((cpu_seconds(server_pid) if server_pid else 0.0, time.process_time()))  # noqa: E731
    loop.call_at(measured_from, sample)
    t0 = time.perf_counter()
    await asyncio.gather(*(drive_one(i, ws) for i, ws in enumerate(conns)))
    wall = time.perf_counter() - t0
    sample()
    await asyncio.gather(*(ws.close() for ws in conns))
    server_ms, client_ms = (round(1000 * (cpu[i + 2] - cpu[i]) / max(len(latencies), 1), 3) for i in (0, 1))
    return {"sessions": sessions, "answers_per_s": round(len(latencies) / seconds, 1), "errors": len(errors),
            "first_error": errors[0] if errors else None, "overrun_s": round(wall - (end - start) - 0.5, 2),
            **percentiles_ms(latencies, digits=1), "max_ms": round(1000 * max(latencies), 1),
            "server_cpu_ms_per_answer": server_ms if server_pid is not None else None,
            "client_cpu_ms_per_answer": client_ms}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_open_loop(sessions: int = 1024, seconds: float = 20, rate: float = 1.0, warmup: float = 3.0,
                  server_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """The open-loop load against (1) the echo endpoint, (2) `agenthub serve` with one
    session, (3) `agenthub serve` with `sessions`; each a fresh server process, this
    process the client. Figures per run (ms), plus the load average before and after."""
    runs: dict[str, Any] = {}
    loads = [load_average()]
    echo = subprocess.Popen([sys.executable, __file__, "--echo-serve"], stdout=subprocess.PIPE, text=True)
    try:
        url = echo.stdout.readline().split(" at ")[1].split()[0]  # type: ignore[union-attr]
        runs["echo"] = asyncio.run(open_loop(url, sessions, seconds, rate, warmup, echo.pid))
    finally:
        echo.terminate()
        echo.wait()
    loads.append(load_average())
    server, url = start_server("--max-sessions", str(sessions + 16), *server_args)
    try:
        for n in (1, sessions):  # one server for both: the first run's session is gone before the second
            runs[f"serve, {n} session{'s' if n > 1 else ''}"] = asyncio.run(
                open_loop(url, n, seconds, rate, warmup, server.pid))
            loads.append(load_average())
        final = health(url)
    finally:
        server.terminate()
        server.wait()
    return {"runs": runs, "rate_per_session": rate, "seconds": seconds, "load_average": loads,
            "server": {k: final.get(k) for k in ("peak_sessions", "gc_frozen", "timed_out", "bad_requests")}}


def print_open_loop(result: dict[str, Any]) -> None:
    runs = result["runs"]
    echo = runs["echo"]
    print(f"open loop: each session steps {result['rate_per_session']:g}/s, {result['seconds']:g} s measured, "
          f"{os.cpu_count()} CPUs; load average (1/5/15 min) before and after each run: "
          + " | ".join(result["load_average"]))
    keys = ("p50_ms", "p95_ms", "p99_ms", "max_ms")
    print(f"{'':<26}{'answers/s':>10}" + "".join(f"{k[:-3] + ' ms':>9}" for k in keys)
          + "".join(f"{k[:-3] + ' /echo':>10}" for k in keys[:3]) + f"{'errors':>8}  CPU ms/answer: server, client")
    for name, r in runs.items():
        ratios = "".join(f"{r[k] / max(echo[k], 0.1):>10.2f}" for k in keys[:3])
        print(f"{name:<26}{r['answers_per_s']:>10}" + "".join(f"{r[k]:>9}" for k in keys) + ratios
              + f"{r['errors']:>8}  {r['server_cpu_ms_per_answer']:>13}, {r['client_cpu_ms_per_answer']}")


def proc_status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def rss_mb(pid: int) -> float:
    return proc_status(pid, "VmRSS") / 1024


def health(url: str) -> dict[str, Any]:
    import httpx
    return httpx.get(url + "/health", timeout=30).json()


def run_abuse(good: int = 1024, abusers: int = 64, episodes: int = 2) -> dict[str, Any]:
    """Both soak runs (without, then with abuse) against one fresh `agenthub serve`;
    the figures, memory included (MB, the server's VmRSS)."""
    server, url = start_server("--max-sessions", str(good + abusers + 16), "--idle-timeout", str(IDLE_TIMEOUT),
                               "--max-frame-bytes", str(MAX_FRAME))
    try:
        expected = expected_episodes(list(range(good * episodes)))
        asyncio.run(Soak(url, 1, 1, 0, expected).run())  # warm-up: imports and caches of a first session
        wait_for(lambda: health(url)["sessions"] == 0)
        time.sleep(IDLE_TIMEOUT / 2)  # a reaper tick hands the warm-up's memory back
        memory = {"cold_mb": round(rss_mb(server.pid), 1)}
        peak = [0.0]
        stop = threading.Event()

        def sample() -> None:  # the most memory used, while the runs go on
            while not stop.wait(0.1):
                peak[0] = max(peak[0], rss_mb(server.pid))

        runs = {}
        for name, n_abusers in (("without abuse", 0), ("with abuse", abusers)):
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            runs[name] = asyncio.run(Soak(url, good, episodes, n_abusers, expected).run())
            stop.set()
            sampler.join()
            stop.clear()
            runs[name]["sessions_held"] = health(url)["peak_sessions"]  # the most so far: this run's or more
            left = wait_for(lambda: health(url)["sessions"] == 0, timeout=IDLE_TIMEOUT * 10)
            runs[name]["all_sessions_released"] = left
            time.sleep(IDLE_TIMEOUT / 2 + 1)  # the reaper's next tick trims the heap
            memory["after_quiet_mb" if n_abusers == 0 else "end_mb"] = round(rss_mb(server.pid), 1)
        final = health(url)
        memory.update(peak_mb=round(peak[0], 1), threads=proc_status(server.pid, "Threads"))
        memory["end_vs_after_quiet"] = round(memory["end_mb"] / memory["after_quiet_mb"], 3)
        memory["end_vs_cold"] = round(memory["end_mb"] / memory["cold_mb"], 3)
        return {"runs": runs, "memory": memory, "server": {k: final[k] for k in (
            "reaped", "bad_requests", "timed_out", "stale_calls", "sessions")}}
    finally:
        server.terminate()
        server.wait()


def wait_for(predicate: Callable[[], bool], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def print_abuse(result: dict[str, Any]) -> None:
    runs = result["runs"]
    names = list(runs)
    rows = [("sessions held (max)", "sessions_held"), ("well-behaved correct", None), ("steps/s", "steps_per_s"),
            ("p50 ms", "p50_ms"), ("p95 ms", "p95_ms"), ("p99 ms", "p99_ms"), ("wall s", "wall_s"),
            ("all sessions released", "all_sessions_released")]
    print(f"{'':<24}" + "".join(f"{n:>16}" for n in names))
    for label, key in rows:
        cells = [f"{r['good_correct']}/{r['good']}" if key is None else str(r[key]) for r in runs.values()]
        print(f"{label:<24}" + "".join(f"{c:>16}" for c in cells))
    for kind, outcomes in runs[names[-1]]["abusers"].items():
        print(f"abusers: {kind:<10} " + ", ".join(f"{v} {k}" for k, v in outcomes.items()))
    m = result["memory"]
    print(f"server RSS: cold {m['cold_mb']} MB; after the quiet run's clients left {m['after_quiet_mb']} MB; "
          f"peak {m['peak_mb']} MB; after the abused run's clients left {m['end_mb']} MB = "
          f"{m['end_vs_after_quiet']:.2f}x the quiet run's ({m['end_vs_cold']:.2f}x cold); {m['threads']} threads")
    print(f"server counters: {result['server']}")
    for run in runs.values():
        for failure in run["failures"]:
            print(f"FAILED {failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default=None, help="default: 1,16,64; --open-loop: 1024")
    parser.add_argument("--steps", type=int, default=200, help="steps per session")
    parser.add_argument("--abuse", action="store_true", help="the soak: well-behaved sessions with and without abusers")
    parser.add_argument("--good", type=int, default=1024, help="--abuse: well-behaved sessions held at once")
    parser.add_argument("--abusers", type=int, default=64, help="--abuse: abusive clients (a quarter of each kind)")
    parser.add_argument("--episodes", type=int, default=2, help="--abuse: episodes per well-behaved session")
    parser.add_argument("--open-loop", action="store_true", help="N sessions each stepping --rate times a second")
    parser.add_argument("--seconds", type=float, default=20, help="--open-loop: seconds measured (after 3 s warm-up)")
    parser.add_argument("--rate", type=float, default=1.0, help="--open-loop: steps per second per session")
    parser.add_argument("--echo-serve", action="store_true", help=argparse.SUPPRESS)  # the open loop's baseline
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.echo_serve:
        echo_serve()
        return
    if args.open_loop:
        results = run_open_loop(int(args.sessions or 1024), args.seconds, args.rate)
        print_open_loop(results)
    elif args.abuse:
        results: Any = run_abuse(args.good, args.abusers, args.episodes)
        print(f"{args.good} well-behaved sessions x {args.episodes} episodes, {args.abusers} abusers, "
              f"{os.cpu_count()} CPUs")
        print_abuse(results)
    else:
        server, url = start_server("--max-sessions", "256")
        try:
            results = {}
            for n in (int(x) for x in (args.sessions or "1,16,64").split(",")):
                results[n] = {"in_process": drive(lambda: agenthub.make(ENV_ID), n, args.steps),
                              "remote": drive(lambda: agenthub.RemoteEnv(url, ENV_ID), n, args.steps)}
        finally:
            server.terminate()
            server.wait()
        print(f"{'sessions':>8}  {'where':<11}{'steps/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
        for n, by_where in results.items():
            for where, f in by_where.items():
                print(f"{n:>8}  {where:<11}{f['steps_per_s']:>10}{f['p50_ms']:>9}{f['p95_ms']:>9}{f['p99_ms']:>9}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
