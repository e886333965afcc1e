"""`RemoteEnv`: an `agenthub.Env` whose episodes run in an env server (`agenthub serve`).

    env = agenthub.RemoteEnv("http://127.0.0.1:8700", "tools/guess-number-v0")
    obs, info = env.reset(seed=7)                        # or: await env.areset(seed=7)
    obs, reward, terminated, truncated, info = env.step("32")

Each RemoteEnv holds one WebSocket connection, which is one session (one env instance)
on the server; the episode contract (max turns, malformed actions, info keys) is applied
server-side, so a RemoteEnv behaves exactly like `agenthub.make(env_id)`. Every wait has
a timeout and every server-side failure is raised here as `RemoteEnvError`: a client
never hangs on a broken or vanished server. The async methods (`areset`, `astep`) run
the same calls off the event loop. `url` is "http://HOST:PORT" or "unix:/path/to.sock".
A server that needs a token (see `agenthub.auth`) gets `token=`, or else the one in
`$AGENTHUB_SERVER_TOKEN` / the file `$AGENTHUB_SERVER_TOKEN_FILE`; a wrong or missing
token raises `Unauthorized` on connecting.
"""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

from agenthub.actions import Action
from agenthub.auth import bearer, load_token
from agenthub.env import Env, StepResult
from agenthub.errors import AgentHubError
from agenthub.types import Message


class RemoteEnvError(AgentHubError):
    """The server answered with an error, closed the session, or did not answer in time."""


class ServerAtCapacity(RemoteEnvError):
    """The server already holds its maximum number of sessions."""


class Unauthorized(RemoteEnvError):
    """The server needs a token and this client sent none, or a wrong one."""


class RemoteEnv(Env):
    def __init__(self, url: str, env_id: str | None = None, timeout: float = 300, connect_timeout: float = 30,
                 token: str | None = None):
        """`timeout`: the longest wait for one answer (an env step) before giving up;
        `token`: the server's shared secret (default: from the environment, see above)."""
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect, unix_connect

        self.url, self.timeout = url, timeout
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # one request in flight per session
        self._closed = False
        token = token if token is not None else load_token()
        headers = bearer(token) if token else None
        try:
            if url.startswith("unix:"):
                ws = unix_connect(url[len("unix:"):], "ws://localhost/session", open_timeout=connect_timeout,
                                  max_size=None, additional_headers=headers)
            else:
                ws_url = url.replace("https://", "wss://", 1).replace("http://", "ws://", 1).rstrip("/")
                ws = connect(ws_url + "/session", open_timeout=connect_timeout, max_size=None,
                             additional_headers=headers)
            self._ws = ws.__enter__()  # held open until close(), as a `with` block would
        except InvalidStatus as e:
            why = e.response.body.decode("utf-8", "replace").strip()[:300] if e.response.body else ""
            if e.response.status_code == 401:
                raise Unauthorized(f"the env server at {url} refused the session: "
                                   f"{'wrong token' if token else 'no token sent'}; {why}") from None
            raise RemoteEnvError(f"the env server at {url} refused the session: HTTP {e.response.status_code} "
                                 f"{why}".rstrip()) from None
        except (OSError, TimeoutError) as e:
            raise RemoteEnvError(f"cannot reach the env server at {url}: {e}") from None
        except Exception as e:  # handshake failed (not a websocket endpoint, garbled answer)
            raise RemoteEnvError(f"the env server at {url} refused the session: {e}") from None
        hello = self._receive(connect_timeout)
        if hello.get("type") != "hello":
            self._ws.close()
            raise _error_from(hello.get("error") or {"message": f"unexpected greeting {hello}"})
        if env_id is not None and env_id not in (hello["env_id"], hello["env_id"].rsplit("-v", 1)[0]):
            self._ws.close()
            raise RemoteEnvError(f"the server at {url} serves {hello['env_id']}, not {env_id}")
        self.env_id: str = hello["env_id"]
        self.session_id: str = hello["session"]
        self.tools = hello["tools"]
        self.max_turns = hello["max_turns"]
        self.version = hello["version"]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[list[Message], dict[str, Any]]:
        super().reset(seed=seed)
        obs, info = self._call("reset", seed=seed, options=options)
        return obs, info

    def step(self, action: Any) -> StepResult:  # type: ignore[override]
        if isinstance(action, Action):
            action = action.message
        obs, reward, terminated, truncated, info = self._call("step", action=action)
        return obs, reward, terminated, truncated, info

    def oracle_actions(self) -> list[str | Message]:
        return self._call("oracle_actions")

    def ping(self) -> None:
        self._call("ping")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._ws.close()

    def _call(self, op: str, **args: Any) -> Any:
        if self._closed:
            raise RemoteEnvError("this RemoteEnv is closed")
        with self._lock:
            rid = next(self._ids)
            try:
                self._ws.send(json.dumps({"id": rid, "op": op, **args}))
            except Exception as e:
                raise self._ended(e) from None
            while True:
                answer = self._receive(self.timeout)
                if answer.get("id") == rid:
                    break
                if answer.get("type") == "closing":
                    raise RemoteEnvError(f"the server closed this session: {answer.get('reason')}")
        if not answer.get("ok"):
            raise _error_from(answer.get("error") or {}, op)
        return answer["result"]

    def _receive(self, timeout: float) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed
        try:
            return json.loads(self._ws.recv(timeout=timeout))
        except TimeoutError:
            raise RemoteEnvError(f"no answer from {self.url} within {timeout:g}s") from None
        except ConnectionClosed as e:
            raise self._ended(e) from None

    def _ended(self, e: Exception) -> RemoteEnvError:
        rcvd = getattr(e, "rcvd", None)
        reason = rcvd.reason if rcvd is not None and rcvd.reason else f"connection lost ({e})"
        return RemoteEnvError(f"the session with {self.url} ended: {reason}")


def _error_from(error: dict[str, Any], op: str | None = None) -> RemoteEnvError:
    if error.get("kind") == "capacity":
        return ServerAtCapacity(error.get("message", "server at capacity"))
    where = f" in {op}" if op else ""
    kind = f"{error['type']}: " if error.get("type") and error.get("kind") == "env_error" else ""
    return RemoteEnvError(f"remote env error{where}: {kind}{error.get('message', 'unknown error')}")
