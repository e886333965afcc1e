"""The env server behind `agenthub serve ENV_ID`: any env, over HTTP + WebSocket.

One WebSocket connection (`/session`) is one session with its own env instance; JSON
frames carry requests `{"id", "op": "reset"|"step"|"oracle_actions"|"ping", ...}` and
answers `{"id", "ok": true, "result": ...}` or `{"id", "ok": false, "error": {"kind",
"type", "message"}}`. An exception inside the env is answered as an error (the session
goes on), so a client never hangs on a broken env. `GET /health` and `GET /schema`
describe the server. Sessions beyond `max_sessions` are told so and closed at once
(kind "capacity"); a session with no request for `idle_timeout` seconds is closed and
its env released; WebSocket pings (both ways) detect peers that vanished.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import sys
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from agenthub import __version__
from agenthub.env import Env
from agenthub.errors import AgentHubError
from agenthub.registry import make, spec

PROTOCOL = 1
CAPACITY_CLOSE_CODE = 1013  # "try again later"
IDLE_CLOSE_CODE = 4000


def to_json(obj: Any) -> str:
    """JSON for env outputs, which may hold numpy scalars/arrays or other odd values."""
    def fallback(x: Any) -> Any:
        if hasattr(x, "tolist"):  # numpy arrays and scalars
            return x.tolist()
        if isinstance(x, (set, tuple)):
            return list(x)
        return str(x)
    return json.dumps(obj, default=fallback)


@dataclass
class Session:
    id: str
    websocket: Any
    env: Env | None = None
    last_active: float = field(default_factory=time.monotonic)
    busy: bool = False
    closed: bool = False


class EnvServer:
    def __init__(self, env_id: str, max_sessions: int = 64, idle_timeout: float = 600, op_timeout: float = 300,
                 max_turns: int | None = None, env_kwargs: dict[str, Any] | None = None):
        self.env_id = spec(env_id).id
        self.max_sessions, self.idle_timeout, self.op_timeout = max_sessions, idle_timeout, op_timeout
        self.max_turns, self.env_kwargs = max_turns, dict(env_kwargs or {})
        self.sessions: dict[str, Session] = {}
        self.reserved = 0  # sessions admitted, counted before their env exists
        self.started = time.time()
        self.reaped = 0
        probe = self._make_env()  # fails fast on a broken env, and gives the schema
        try:
            self.schema = {"env_id": self.env_id, "spec": spec(self.env_id).to_dict(), "tools": probe.tools,
                           "max_turns": probe.max_turns, "version": probe.version, "protocol": PROTOCOL,
                           "agenthub_version": __version__, "ops": ["reset", "step", "oracle_actions", "ping"]}
        finally:
            probe.close()
        self.app = self._build_app()

    def _make_env(self) -> Env:
        return make(self.env_id, max_turns=self.max_turns, **self.env_kwargs)

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "env_id": self.env_id, "sessions": self.reserved,
                "max_sessions": self.max_sessions, "reaped": self.reaped,
                "uptime_s": round(time.time() - self.started, 3)}

    def _build_app(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[None]:
            reaper = asyncio.create_task(self._reap_idle())
            yield
            reaper.cancel()
            for session in list(self.sessions.values()):
                await self._end(session, "server shutting down")

        app = FastAPI(title=f"agenthub env server: {self.env_id}", lifespan=lifespan)
        app.get("/health")(self.health)
        app.get("/schema")(lambda: self.schema)

        @app.websocket("/session")
        async def session_endpoint(websocket: WebSocket) -> None:
            await self._serve_session(websocket)

        return app

    async def _serve_session(self, websocket: WebSocket) -> None:
        await websocket.accept()
        if self.reserved >= self.max_sessions:
            await websocket.send_text(to_json({"type": "error", "error": {
                "kind": "capacity", "type": "ServerAtCapacity",
                "message": f"server at capacity: {self.reserved} of {self.max_sessions} sessions in use "
                           f"(raise --max-sessions or retry later)"}}))
            await websocket.close(code=CAPACITY_CLOSE_CODE)
            return
        self.reserved += 1
        session = Session(uuid.uuid4().hex[:12], websocket)
        self.sessions[session.id] = session
        try:
            try:
                session.env = await asyncio.to_thread(self._make_env)
            except Exception as e:
                await websocket.send_text(to_json({"type": "error", "error": _error("env_error", e)}))
                return
            await websocket.send_text(to_json({"type": "hello", "session": session.id, **self.schema}))
            while not session.closed:
                text = await websocket.receive_text()
                session.last_active, session.busy = time.monotonic(), True
                answer = await self._answer(session, text)
                session.last_active, session.busy = time.monotonic(), False
                await websocket.send_text(answer)
        except (WebSocketDisconnect, RuntimeError, ConnectionError):
            pass  # the client went away (or the reaper closed the socket under us)
        finally:
            await self._end(session, None)

    async def _answer(self, session: Session, text: str) -> str:
        try:
            request = json.loads(text)
            op = request["op"]
        except (ValueError, KeyError, TypeError) as e:
            return to_json({"id": None, "ok": False, "error": _error("bad_request", e)})
        rid = request.get("id")
        env = session.env
        calls = {
            "reset": lambda: env.reset(seed=request.get("seed"), options=request.get("options")),
            "step": lambda: env.step(request.get("action")),
            "oracle_actions": lambda: env.oracle_actions(),
            "ping": lambda: "pong",
        }
        if op not in calls:
            return to_json({"id": rid, "ok": False, "error": {
                "kind": "bad_request", "type": "ValueError", "message": f"unknown op {op!r}"}})
        try:
            result = await asyncio.wait_for(asyncio.to_thread(calls[op]), self.op_timeout)
        except asyncio.TimeoutError:
            return to_json({"id": rid, "ok": False, "error": {
                "kind": "timeout", "type": "TimeoutError", "message": f"{op} took over {self.op_timeout:g}s"}})
        except Exception as e:
            return to_json({"id": rid, "ok": False, "error": _error("env_error", e)})
        return to_json({"id": rid, "ok": True, "result": result})

    async def _end(self, session: Session, reason: str | None) -> None:
        """Release a session once: close its env, and its socket if `reason` says why."""
        if session.closed and session.id not in self.sessions:
            return
        session.closed = True
        if self.sessions.pop(session.id, None) is not None:
            self.reserved -= 1
        if reason is not None:
            try:
                await asyncio.wait_for(session.websocket.send_text(to_json({"type": "closing", "reason": reason})), 2)
                await asyncio.wait_for(session.websocket.close(code=IDLE_CLOSE_CODE, reason=reason[:100]), 2)
            except Exception:
                pass
        if session.env is not None:
            env, session.env = session.env, None
            await asyncio.to_thread(env.close)

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.idle_timeout / 4))
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if not session.busy and now - session.last_active > self.idle_timeout:
                    self.reaped += 1
                    await self._end(session, f"idle for over {self.idle_timeout:g}s")


def _error(kind: str, e: BaseException) -> dict[str, str]:
    return {"kind": kind, "type": type(e).__name__, "message": str(e)}


def bind_socket(host: str = "127.0.0.1", port: int = 8700, uds: str | None = None) -> socket.socket:
    """A listening socket, or a one-line AgentHubError (port in use, bad address)."""
    if uds is not None:
        if os.path.exists(uds):
            os.unlink(uds)
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.bind(uds)
        except OSError as e:
            sock.close()
            raise AgentHubError(f"cannot listen on {uds}: {e.strerror}") from None
        os.chmod(uds, 0o666)
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            if e.errno == errno.EADDRINUSE:
                raise AgentHubError(f"port {port} on {host} is in use; pick another with --port") from None
            raise AgentHubError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    return sock


def url_of(sock: socket.socket) -> str:
    if sock.family == socket.AF_UNIX:
        return f"unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def _uvicorn_server(app: Any, ping_interval: float) -> Any:
    import uvicorn
    config = uvicorn.Config(app, log_level="warning", ws_ping_interval=ping_interval, ws_ping_timeout=ping_interval,
                            ws_max_size=64 * 1024 * 1024, timeout_keep_alive=30, lifespan="on")
    return uvicorn.Server(config)


def serve(env_id: str, host: str = "127.0.0.1", port: int = 8700, uds: str | None = None,
          ping_interval: float = 20, **server_options: Any) -> None:
    """Run the server until interrupted (what `agenthub serve` does)."""
    server = EnvServer(env_id, **server_options)
    sock = bind_socket(host, port, uds)
    print(f"agenthub serve: {server.env_id} at {url_of(sock)} (max {server.max_sessions} sessions)",
          file=sys.stdout, flush=True)
    _uvicorn_server(server.app, ping_interval).run(sockets=[sock])


class ServerThread:
    """An env server on a background thread (tests, benchmarks, notebooks):

        with ServerThread(EnvServer("tools/guess-number-v0")) as url:
            env = agenthub.RemoteEnv(url)
    """

    def __init__(self, server: EnvServer, host: str = "127.0.0.1", port: int = 0, ping_interval: float = 20):
        self.server = server
        self.sock = bind_socket(host, port)
        self.url = url_of(self.sock)
        self._uvicorn = _uvicorn_server(server.app, ping_interval)
        self._thread = threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                        name="agenthub-env-server")

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._uvicorn.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self._uvicorn.should_exit = True
        self._thread.join(timeout=30)
        self.sock.close()
