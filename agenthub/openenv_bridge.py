"""OpenEnv's protocol on `agenthub serve`: OpenEnv's own clients drive agenthub envs.

`mount(server, app)` adds OpenEnv's routes to an `EnvServer`'s app, beside agenthub's
own `/session` protocol (which is unchanged):

- `WS /ws`: one connection is one session with its own env; text frames
  `{"type": "reset", "data": {"seed": 7, ...}}`, `{"type": "step", "data": ACTION}`,
  `{"type": "state"}`, `{"type": "close"}`, answered with
  `{"type": "observation", "data": {"observation": OBS, "reward": r|null, "done": bool}}`,
  `{"type": "state", "data": STATE}` or `{"type": "error", "data": {"message", "code"}}`
  (codes as OpenEnv names them: INVALID_JSON, UNKNOWN_TYPE, VALIDATION_ERROR,
  EXECUTION_ERROR, CAPACITY_REACHED). Sessions share the server's `max_sessions`,
  idle reaping, op timeout and token check with `/session` ones.
- `POST /reset`, `POST /step`, `GET /state`, `GET /metadata`, `POST /mcp` (JSON-RPC
  `tools/list`): OpenEnv's HTTP routes. As in OpenEnv they are stateless: each request
  gets a fresh env, so `/step` plays the first turn of an episode reset with the
  body's optional `seed`; episodes are played over `/ws`.
- `GET /schema` and `GET /health` stay the server's own, which also carry what OpenEnv
  reads there (`SCHEMAS`; `"status": "healthy"`).

Wire shapes (the JSON schemas are `SCHEMAS`):
ACTION `{"content": str, "tool_calls": [OpenAI tool calls]}` (the assistant message);
OBS `{"messages": [...], "info": {...}, "terminated", "truncated", "tools": [...]}`
(`tools` on reset only); reset's extra `data` keys besides `seed` and `episode_id`
become the env's reset `options`. An action that does not fit the schema is a
VALIDATION_ERROR; one that fits but is malformed for the env (unknown tool, bad JSON
arguments) gets the env's error observation and the episode goes on, as everywhere.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

try:
    from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
    from fastapi.responses import JSONResponse, PlainTextResponse
except ImportError as e:
    raise ImportError(f"the OpenEnv routes need fastapi: pip install 'agenthub[server]' ({e})") from e
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agenthub.auth import HEADER
from agenthub.openenv_env import AGENTHUB_ACTION
from agenthub.wire import TIMEOUT_CLOSE_CODE, Session, to_json

if TYPE_CHECKING:
    from agenthub.server import EnvServer

# agenthub error kinds -> OpenEnv's WebSocket error codes
CODES = {"bad_request": "VALIDATION_ERROR", "env_error": "EXECUTION_ERROR", "timeout": "EXECUTION_ERROR"}
RESET_KEYS = ("seed", "episode_id")


class AgentHubActionModel(BaseModel):
    """One assistant turn: its text and, optionally, OpenAI-format tool calls."""

    model_config = ConfigDict(extra="forbid", title=AGENTHUB_ACTION)
    content: str = Field(default="", description="the assistant's text (may hold tool-call markup)")
    tool_calls: list[dict[str, Any]] | None = Field(default=None, description="OpenAI-format tool calls")
    metadata: dict[str, Any] = Field(default_factory=dict, description="ignored; OpenEnv's Action field")

    def to_agenthub(self) -> str | dict[str, Any]:
        """The action as `EpisodeContract.step` takes it."""
        if self.tool_calls is None:
            return self.content
        return {"role": "assistant", "content": self.content, "tool_calls": self.tool_calls}


class AgentHubObservationModel(BaseModel):
    model_config = ConfigDict(title="AgentHubObservation")
    messages: list[dict[str, Any]] = Field(description="new chat messages (reset: the prompt)")
    info: dict[str, Any] = Field(default_factory=dict, description="the env's info dict")
    terminated: bool = False
    truncated: bool = False
    tools: list[dict[str, Any]] | None = Field(default=None, description="OpenAI tool specs (reset only)")


class AgentHubStateModel(BaseModel):
    model_config = ConfigDict(title="AgentHubState", extra="allow")
    episode_id: str | None = None
    step_count: int = Field(default=0, ge=0)
    env_id: str = ""
    task_id: str | None = None
    done: bool = False


SCHEMAS = {"action": AgentHubActionModel.model_json_schema(),
           "observation": AgentHubObservationModel.model_json_schema(),
           "state": AgentHubStateModel.model_json_schema()}


class _ProtocolError(Exception):
    """A frame or body that breaks OpenEnv's protocol; `code` is OpenEnv's error code."""

    def __init__(self, code: str, message: str, errors: Any = None):
        super().__init__(message)
        self.code, self.errors = code, errors

    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"message": str(self), "code": self.code}
        if self.errors is not None:
            data["errors"] = self.errors
        return data


@dataclass
class _Episode:
    """What OpenEnv's `state` reports for one session."""

    env_id: str
    episode_id: str | None = None
    step_count: int = 0
    task_id: str | None = None
    done: bool = False

    def state(self) -> dict[str, Any]:
        return {"episode_id": self.episode_id, "step_count": self.step_count, "env_id": self.env_id,
                "task_id": self.task_id, "done": self.done}


def reset_request(data: Any) -> tuple[dict[str, Any], str]:
    """(agenthub reset request fields, episode id) of OpenEnv reset data. Raises
    _ProtocolError when `data` is not an object, `episode_id` not a string or `seed` bad."""
    if not isinstance(data, dict):
        raise _ProtocolError("VALIDATION_ERROR", "reset data must be an object")
    episode_id = data.get("episode_id")
    if episode_id is not None and not (isinstance(episode_id, str) and len(episode_id) <= 255):
        raise _ProtocolError("VALIDATION_ERROR", "episode_id must be a string of at most 255 characters")
    options = {k: v for k, v in data.items() if k not in RESET_KEYS}
    return {"seed": checked_seed(data.get("seed")), "options": options or None}, episode_id or uuid.uuid4().hex


def checked_seed(seed: Any) -> int | None:
    """`seed` when it is null or an integer in [0, 2**64); else raises _ProtocolError."""
    if seed is None or (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**64):
        return seed
    raise _ProtocolError("VALIDATION_ERROR", "seed must be null or an integer in [0, 2**64)")


def step_action(data: Any) -> str | dict[str, Any]:
    """The agenthub action of OpenEnv step data; raises _ProtocolError off the schema."""
    if not isinstance(data, dict):
        raise _ProtocolError("VALIDATION_ERROR", "step data must be an action object")
    try:
        return AgentHubActionModel.model_validate(data).to_agenthub()
    except ValidationError as e:
        raise _ProtocolError("VALIDATION_ERROR", "the action does not match the action schema "
                             "(GET /schema)", json.loads(e.json(include_url=False))) from None


def observation_payload(op: str, result: Any, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """OpenEnv's `{"observation", "reward", "done"}` of an agenthub reset or step result."""
    if op == "reset":
        messages, info = result
        return {"observation": {"messages": messages, "info": info, "terminated": False, "truncated": False,
                                "tools": tools}, "reward": None, "done": False}
    messages, reward, terminated, truncated, info = result
    return {"observation": {"messages": messages, "info": info, "terminated": terminated, "truncated": truncated,
                            "tools": None}, "reward": reward, "done": bool(terminated or truncated)}


def mcp_answer(body: Any, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """A JSON-RPC 2.0 answer: `tools/list` gives the env's tools as MCP tools; tools are
    called through `step` (an MCP `tools/call` would bypass the episode)."""
    rid = body.get("id") if isinstance(body, dict) else None
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0" or not isinstance(body.get("method"), str):
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32600, "message": "Invalid Request"}}
    if body["method"] == "tools/list":
        listed = [{"name": t["function"]["name"], "description": t["function"].get("description", ""),
                   "inputSchema": t["function"].get("parameters", {"type": "object"})} for t in tools]
        return {"jsonrpc": "2.0", "id": rid, "result": {"tools": listed}}
    return {"jsonrpc": "2.0", "id": rid,
            "error": {"code": -32601, "message": f"Method not found: {body['method'][:80]} (this server lists "
                                                 f"tools; call them with a step action)"}}


def mount(server: EnvServer, app: FastAPI) -> None:
    """Add OpenEnv's routes (see the module docstring) to `server`'s app."""
    tools = server.schema["tools"]
    spec = server.schema["spec"]
    denied = {"detail": "this env server needs its token (header " + HEADER + ")"}

    async def one_shot(request: Request, op: str) -> Any:
        if not server._authorized(request.headers.get(HEADER)):
            return JSONResponse(denied, status_code=401)
        try:
            body = json.loads(await request.body() or b"{}")
        except (ValueError, RecursionError) as e:
            return JSONResponse({"detail": [{"msg": f"the body is not JSON: {str(e)[:200]}"}]}, status_code=422)
        try:
            if op == "reset":
                args, _ = reset_request(body)
                action = None
            else:
                if not isinstance(body, dict) or "action" not in body:
                    raise _ProtocolError("VALIDATION_ERROR", "the body must be an object with an `action`")
                action = step_action(body["action"])
                args = {"seed": checked_seed(body.get("seed"))}
        except _ProtocolError as e:
            return JSONResponse({"detail": e.errors or [{"msg": str(e)}]}, status_code=422)
        try:
            # past the timeout the call finishes (and closes its env) in its worker, unanswered
            result, env_tools = await asyncio.wait_for(
                server._in_worker(lambda: _fresh_episode(server, args, action)), server.op_timeout)
        except asyncio.TimeoutError:
            return JSONResponse({"detail": f"{op} took over {server.op_timeout:g}s"}, status_code=504)
        except Exception as e:
            return JSONResponse({"detail": f"{type(e).__name__}: {e}"}, status_code=500)
        return JSONResponse(json.loads(to_json(observation_payload(op, result, env_tools))))

    @app.post("/reset", tags=["OpenEnv"], summary="reset a fresh env (stateless; episodes run over /ws)")
    async def reset(request: Request) -> Any:
        return await one_shot(request, "reset")

    @app.post("/step", tags=["OpenEnv"], summary="first step of a fresh episode (stateless; use /ws)")
    async def step(request: Request) -> Any:
        return await one_shot(request, "step")

    @app.get("/state", tags=["OpenEnv"])
    def state(request: Request) -> Any:
        if not server._authorized(request.headers.get(HEADER)):
            return JSONResponse(denied, status_code=401)
        return _Episode(server.env_id).state()

    @app.get("/metadata", tags=["OpenEnv"])
    def metadata() -> dict[str, Any]:
        return {"name": server.env_id, "description": spec.get("description") or f"agenthub env {server.env_id}",
                "version": str(server.schema["version"]), "author": spec.get("plugin"),
                "readme_content": None, "documentation_url": None}

    @app.post("/mcp", tags=["OpenEnv"])
    async def mcp(request: Request) -> Any:
        if not server._authorized(request.headers.get(HEADER)):
            return JSONResponse(denied, status_code=401)
        try:
            body = json.loads(await request.body())
        except (ValueError, RecursionError):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
        return mcp_answer(body, tools)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        if not server._authorized(websocket.headers.get(HEADER)):
            await websocket.send_denial_response(PlainTextResponse(denied["detail"], status_code=401))
            return
        await _serve(server, websocket, tools)


def _fresh_episode(server: EnvServer, args: dict[str, Any], action: str | dict[str, Any] | None
                   ) -> tuple[Any, list[dict[str, Any]]]:
    """(reset result, or the step result when `action` is given; the env's tools) of a new
    env, closed afterwards."""
    env = server._make_env()
    try:
        result = env.reset(**args)
        return (result if action is None else env.step(action)), env.tools
    finally:
        env.close()


async def _serve(server: EnvServer, websocket: WebSocket, tools: list[dict[str, Any]]) -> None:
    """One OpenEnv session: admitted, reaped and timed out like a `/session` one (the
    requests go through the server's own `_answer`), with OpenEnv's frames."""
    await websocket.accept()
    if server.reserved >= server.max_sessions:
        await websocket.send_text(_frame("error", {
            "message": f"server at capacity: {server.reserved} of {server.max_sessions} sessions in use",
            "code": "CAPACITY_REACHED", "active_sessions": server.reserved, "max_sessions": server.max_sessions}))
        await websocket.close()
        return
    server.reserved += 1
    server.peak_sessions = max(server.peak_sessions, server.reserved)
    session = Session(uuid.uuid4().hex[:12], websocket)
    server.sessions[session.id] = session
    episode, ids = _Episode(server.env_id), itertools.count(1)
    try:
        try:
            session.env = await server._in_worker(server._make_env)
        except Exception as e:
            await websocket.send_text(_frame("error", {"message": f"{type(e).__name__}: {e}",
                                                       "code": "FACTORY_ERROR"}))
            return
        while not session.closed:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            session.busy = True
            try:
                frame = await _answer(server, session, episode, next(ids), message.get("text"), tools)
            finally:
                session.busy = False
                session.last_active = time.monotonic()
            if frame is None:  # the client said close
                break
            await websocket.send_text(frame)
            if session.stale is not None:
                await server._end(session, None)
                await websocket.close(code=TIMEOUT_CLOSE_CODE, reason="an op ran past the op timeout")
    except (WebSocketDisconnect, RuntimeError, ConnectionError):
        pass  # the client went away (or the reaper closed the socket under us)
    finally:
        await server._end(session, None)
        try:
            await websocket.close()
        except (RuntimeError, WebSocketDisconnect):
            pass  # already closed, by either side


async def _answer(server: EnvServer, session: Session, episode: _Episode, rid: int, text: str | None,
                  tools: list[dict[str, Any]]) -> str | None:
    """OpenEnv's answer frame to one client frame (None: close the session); never raises."""
    try:
        if text is None:
            raise _ProtocolError("INVALID_JSON", "binary frames are not accepted: send JSON text frames")
        try:
            message = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise _ProtocolError("INVALID_JSON", f"Invalid JSON: {str(e)[:200]}") from None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "close":
            return None
        if kind == "state":
            return _frame("state", episode.state())
        if kind == "mcp":
            return _frame("mcp", mcp_answer(message.get("data"), tools))
        if kind == "reset":
            args, episode_id = reset_request(message.get("data", {}))
            request = {"id": rid, "op": "reset", **args}
        elif kind == "step":
            request = {"id": rid, "op": "step", "action": step_action(message.get("data"))}
        else:
            what = repr(kind)[:80] if isinstance(kind, str) else "none"
            raise _ProtocolError("UNKNOWN_TYPE", f"Unknown message type: {what} (reset, step, state, close, mcp)")
    except _ProtocolError as e:
        server.bad_requests += 1
        return _frame("error", e.data())
    answer = json.loads(await server._answer(session, to_json(request)))
    if not answer.get("ok"):
        error = answer.get("error") or {}
        kind_name = f"{error['type']}: " if error.get("kind") == "env_error" and error.get("type") else ""
        return _frame("error", {"message": kind_name + str(error.get("message", "unknown error")),
                                "code": CODES.get(error.get("kind"), "EXECUTION_ERROR")})
    if request["op"] == "reset":
        episode.episode_id, episode.step_count, episode.done = episode_id, 0, False
        episode.task_id = answer["result"][1].get("task_id")
    else:
        episode.step_count += 1
        episode.done = bool(answer["result"][2] or answer["result"][3])
    env_tools = session.env.tools if session.env is not None else tools  # a task may bring its own tools
    return _frame("observation", observation_payload(request["op"], answer["result"], env_tools))


def _frame(kind: str, data: dict[str, Any]) -> str:
    return to_json({"type": kind, "data": data})

