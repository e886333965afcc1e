"""The env server behind `agenthub serve ENV_ID`: any env, over HTTP + WebSocket.

One WebSocket connection (`/session`) is one session with its own env instance; JSON
text frames carry requests `{"id", "op": "reset"|"step"|"oracle_actions"|"ping", ...}`
and answers `{"id", "ok": true, "result": ...}` or `{"id", "ok": false, "error": {"kind",
"type", "message"}}`. Whatever a client sends is answered: a malformed frame (binary,
not JSON, not an object, a field of the wrong type) gets a `bad_request` error and the
session goes on; an exception inside the env is an `env_error` and the session goes on;
a frame over `max_frame_bytes` closes the connection with code 1009 (message too big).
An op that runs past `op_timeout` is answered with a `timeout` error and closes the
session (code 4001): its call is still running inside the env, and nothing else may run
there, so the env is closed once that call returns. `GET /health` and `GET /schema`
describe the server. Sessions beyond `max_sessions` are told so and closed at once
(kind "capacity"); a session with no request for `idle_timeout` seconds is closed
(code 4000) and its env released; WebSocket pings (both ways) detect vanished peers.

With a token (see `agenthub.auth`) every session and `/schema` must present it; a
wrong or missing one is refused with HTTP 401 and one line saying why.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import gc
import os
import socket
import sys
import threading
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

try:
    from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
    from fastapi.responses import JSONResponse, PlainTextResponse
except ImportError as e:
    raise ImportError(f"the env server needs fastapi: pip install 'agenthub[server]' ({e})") from e

from agenthub import __version__
from agenthub.auth import HEADER, TOKEN_ENV, TOKEN_FILE_ENV, token_matches, token_required
from agenthub.env import Env
from agenthub.env_workers import EnvWorkers, Overdue
from agenthub.errors import AgentHubError
from agenthub.factory import make
from agenthub.openenv_bridge import SCHEMAS as OPENENV_SCHEMAS, mount as mount_openenv
from agenthub.registry import spec
from agenthub.wire import (CAPACITY_CLOSE_CODE, IDLE_CLOSE_CODE, MAX_FRAME_BYTES, OPS, PROTOCOL, TIMEOUT_CLOSE_CODE,
                           WORKERS, BadRequest, Session, parse_request, to_json)

UNAUTHORIZED = (f"this env server needs its token: set {TOKEN_ENV} (or {TOKEN_FILE_ENV}) to the server's "
                f"token, or pass token= to RemoteEnv")


class EnvServer:
    def __init__(self, env_id: str, max_sessions: int = 64, idle_timeout: float = 600, op_timeout: float = 300,
                 max_turns: int | None = None, env_kwargs: dict[str, Any] | None = None,
                 token: str | None = None, max_frame_bytes: int = MAX_FRAME_BYTES):
        """`token`: the shared secret every session must present (None: no check);
        `max_frame_bytes`: the largest request frame, larger ones close the connection."""
        self.env_id = spec(env_id).id
        self.max_sessions, self.idle_timeout, self.op_timeout = max_sessions, idle_timeout, op_timeout
        self.max_turns, self.env_kwargs = max_turns, dict(env_kwargs or {})
        self.token, self.max_frame_bytes = token, max_frame_bytes
        self.sessions: dict[str, Session] = {}
        self.reserved = 0  # sessions admitted, counted before their env exists
        self.started = time.time()
        self.reaped = self.timed_out = self.bad_requests = self.refused = self.peak_sessions = 0
        self._background: set[asyncio.Task[None]] = set()  # envs waiting for a stale call before closing
        self._trim_pending = False  # envs were closed since memory was last handed back
        # Env calls run off the event loop on a bounded set of threads (a thread per
        # session would keep the memory of a burst of sessions for good); calls stuck past
        # op_timeout get threads of their own on top (agenthub.env_workers).
        self.workers = EnvWorkers(min(max_sessions, WORKERS))
        probe = self._make_env()  # fails fast on a broken env, and gives the schema
        try:
            self.schema = {"env_id": self.env_id, "spec": spec(self.env_id).to_dict(), "tools": probe.tools,
                           "max_turns": probe.max_turns, "version": probe.version, "protocol": PROTOCOL,
                           "agenthub_version": __version__, "ops": list(OPS),
                           "max_frame_bytes": max_frame_bytes}
        finally:
            probe.close()
        self.app = self._build_app()

    def _make_env(self) -> Env:
        return make(self.env_id, max_turns=self.max_turns, **self.env_kwargs)

    def health(self) -> dict[str, Any]:
        # "healthy": the status OpenEnv's clients and validator wait for (agenthub.openenv_bridge)
        return {"status": "healthy", "env_id": self.env_id, "sessions": self.reserved,
                "max_sessions": self.max_sessions, "peak_sessions": self.peak_sessions, "reaped": self.reaped,
                "timed_out": self.timed_out,
                "stale_calls": len(self._background), "bad_requests": self.bad_requests,
                "refused": self.refused, "auth": self.token is not None, "gc_frozen": gc.get_freeze_count(),
                "uptime_s": round(time.time() - self.started, 3)}

    def _authorized(self, header: str | None) -> bool:
        if self.token is None or token_matches(header, self.token):
            return True
        self.refused += 1
        return False

    def _build_app(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[None]:
            reaper = asyncio.create_task(self._reap_idle())
            yield
            reaper.cancel()
            for session in list(self.sessions.values()):
                await self._end(session, "server shutting down")
            self.workers.close()

        app = FastAPI(title=f"agenthub env server: {self.env_id}", lifespan=lifespan)
        app.get("/health")(self.health)

        @app.get("/schema")
        def schema(request: Request) -> Any:
            if not self._authorized(request.headers.get(HEADER)):
                return JSONResponse({"error": {"kind": "unauthorized", "message": UNAUTHORIZED}}, status_code=401)
            return {**self.schema, **OPENENV_SCHEMAS}

        @app.websocket("/session")
        async def session_endpoint(websocket: WebSocket) -> None:
            if not self._authorized(websocket.headers.get(HEADER)):
                await websocket.send_denial_response(PlainTextResponse(UNAUTHORIZED, status_code=401))
                return
            await self._serve_session(websocket)

        mount_openenv(self, app)  # OpenEnv's protocol beside ours: /ws, /reset, /step, /state, ...
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
        self.peak_sessions = max(self.peak_sessions, self.reserved)
        session = Session(uuid.uuid4().hex[:12], websocket)
        self.sessions[session.id] = session
        try:
            try:
                session.env = await self._in_worker(self._make_env)
            except Exception as e:
                await websocket.send_text(to_json({"type": "error", "error": _error("env_error", e)}))
                return
            await websocket.send_text(to_json({"type": "hello", "session": session.id, **self.schema}))
            while not session.closed:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                session.last_active, session.busy = time.monotonic(), True
                answer = await self._answer(session, message.get("text"))
                session.last_active, session.busy = time.monotonic(), False
                await websocket.send_text(answer)
                if session.stale is not None:
                    await self._end(session, "an op ran past the op timeout; the session is closed",
                                    TIMEOUT_CLOSE_CODE)
        except (WebSocketDisconnect, RuntimeError, ConnectionError):
            pass  # the client went away (or the reaper closed the socket under us)
        finally:
            await self._end(session, None)

    def _in_worker(self, call: Callable[[], Any]) -> asyncio.Future[Any]:
        """`call()` on a worker thread (no deadline: the caller sets its own)."""
        return self.workers.run(call)

    async def _answer(self, session: Session, text: str | None) -> str:
        """The answer to one frame (`text` None: a binary frame); never raises."""
        try:
            if text is None:
                raise BadRequest("binary frames are not accepted: send each request as a JSON text frame")
            rid, op, args = parse_request(text)
        except BadRequest as e:
            self.bad_requests += 1
            return to_json({"id": e.rid, "ok": False, "error": _error("bad_request", e)})
        if op == "ping":  # touches no env: answered here, without a trip to a worker thread
            return to_json({"id": rid, "ok": True, "result": "pong"})
        env = session.env
        if op == "step":
            call: Callable[[], Any] = lambda: env.step(args["action"])
        elif op == "reset":
            call = lambda: env.reset(seed=args.get("seed"), options=args.get("options"))
        else:
            call = env.oracle_actions
        try:
            result = await self.workers.run(call, self.op_timeout)
        except Overdue as e:
            # The call cannot be stopped from here and keeps running inside the env: no
            # further op may enter that env, so the session ends and the env goes too.
            session.stale = e.returned
            self.timed_out += 1
            return to_json({"id": rid, "ok": False, "error": {
                "kind": "timeout", "type": "TimeoutError",
                "message": f"{op} took over {self.op_timeout:g}s and is still running inside the env, so this "
                           f"session is closed and its env discarded; open a new session"}})
        except Exception as e:
            return to_json({"id": rid, "ok": False, "error": _error("env_error", e)})
        try:
            return to_json({"id": rid, "ok": True, "result": result})
        except (TypeError, ValueError, RecursionError) as e:
            return to_json({"id": rid, "ok": False, "error": _error("env_error", e)})

    async def _end(self, session: Session, reason: str | None, code: int = IDLE_CLOSE_CODE) -> None:
        """Release a session once: close its env (after any stale call returns), and its
        socket if `reason` says why."""
        if session.closed and session.id not in self.sessions:
            return
        session.closed = True
        if self.sessions.pop(session.id, None) is not None:
            self.reserved -= 1
        if reason is not None:
            try:
                await asyncio.wait_for(session.websocket.send_text(to_json({"type": "closing", "reason": reason})), 2)
                await asyncio.wait_for(session.websocket.close(code=code, reason=reason[:100]), 2)
            except Exception:
                pass
        if session.env is not None:
            env, session.env = session.env, None
            if session.stale is not None and not session.stale.done():
                task = asyncio.create_task(self._close_after(session.stale, env))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            else:
                await self._close_env(env)

    async def _close_after(self, stale: asyncio.Future[Any], env: Env) -> None:
        try:
            await stale
        except Exception:
            pass  # its session is gone; only the env's release matters now
        await self._close_env(env)

    async def _close_env(self, env: Env) -> None:
        try:
            await self._in_worker(env.close)
        except Exception as e:
            print(f"agenthub serve: closing an env failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        self._trim_pending = True

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.idle_timeout / 4))
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if not session.busy and now - session.last_active > self.idle_timeout:
                    self.reaped += 1
                    await self._end(session, f"idle for over {self.idle_timeout:g}s")
            if self._trim_pending and not self.sessions and not self._background:
                self._trim_pending = False
                await self._in_worker(_return_free_memory)


def _return_free_memory() -> None:
    """With no session left, hand freed heap back to the OS, so a burst of sessions does
    not leave the server's resident memory at its peak (glibc keeps freed arenas)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the memory is reused by later sessions instead


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


UNREAD_FRAMES = 4  # frames a session may have waiting unread before the server stops reading its socket


def _websocket_protocol() -> Any:
    """uvicorn's websocket protocol, minus a pause and a resume of reading around every
    frame: uvicorn stops reading a socket as soon as one frame waits for the app (two
    epoll_ctl calls and their bookkeeping per request, a sixth of the event loop's time at
    1,024 sessions). Here reading stops once `UNREAD_FRAMES` wait, which still bounds
    what a client flooding frames can queue. Any other uvicorn: its own choice."""
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:
        return "auto"
    if not all(hasattr(WebSocketsSansIOProtocol, name) for name in ("send_receive_event_to_app", "receive")):
        return "auto"

    class SlackReadingProtocol(WebSocketsSansIOProtocol):  # type: ignore[misc]
        def send_receive_event_to_app(self) -> None:
            # "paused" makes uvicorn skip pause_reading; its receive() then resumes,
            # which is a no-op on a socket that was never paused.
            self.read_paused = self.queue.qsize() < UNREAD_FRAMES
            super().send_receive_event_to_app()

    return SlackReadingProtocol


def _uvicorn_server(app: Any, ping_interval: float, max_frame_bytes: int = MAX_FRAME_BYTES) -> Any:
    import uvicorn
    config = uvicorn.Config(app, log_level="warning", ws_ping_interval=ping_interval, ws_ping_timeout=ping_interval,
                            ws_max_size=max_frame_bytes, ws_per_message_deflate=False, timeout_keep_alive=30,
                            lifespan="on", ws=_websocket_protocol())
    return uvicorn.Server(config)


def check_token_policy(host: str, uds: str | None, token: str | None) -> None:
    """Raise a one-line AgentHubError when a server listening there would have no token."""
    if token is None and token_required(host, uds):
        where = f"the unix socket {uds}" if uds is not None else f"{host} (beyond loopback)"
        raise AgentHubError(f"a server on {where} needs a shared-secret token: set {TOKEN_ENV} or pass "
                            f"--token-file PATH (clients send the same token)")


def serve(env_id: str, host: str = "127.0.0.1", port: int = 8700, uds: str | None = None,
          ping_interval: float = 20, **server_options: Any) -> None:
    """Run the server until interrupted (what `agenthub serve` does). Raises AgentHubError
    before starting when the address needs a token (`check_token_policy`) and none is given."""
    check_token_policy(host, uds, server_options.get("token"))
    server = EnvServer(env_id, **server_options)
    sock = bind_socket(host, port, uds)
    auth = "token required" if server.token is not None else "no token"
    print(f"agenthub serve: {server.env_id} at {url_of(sock)} (max {server.max_sessions} sessions, {auth})",
          file=sys.stdout, flush=True)
    # What exists now (modules, the app, the probe env's imports: ~60k objects) lives as
    # long as the process: leave it out of every garbage collection, or each collection
    # that the sessions' own objects set off walks all of it again.
    gc.collect()
    gc.freeze()
    _uvicorn_server(server.app, ping_interval, server.max_frame_bytes).run(sockets=[sock])


class ServerThread:
    """An env server on a background thread (tests, benchmarks, notebooks):

        with ServerThread(EnvServer("tools/guess-number-v0")) as url:
            env = agenthub.RemoteEnv(url)
    """

    def __init__(self, server: EnvServer, host: str = "127.0.0.1", port: int = 0, ping_interval: float = 20):
        check_token_policy(host, None, server.token)
        self.server = server
        self.sock = bind_socket(host, port)
        self.url = url_of(self.sock)
        self._uvicorn = _uvicorn_server(server.app, ping_interval, server.max_frame_bytes)
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
