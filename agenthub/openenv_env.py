"""`openenv:URL`: an agenthub env whose episodes run on any OpenEnv server.

    env = agenthub.make("openenv:http://127.0.0.1:8000")   # also `agenthub eval openenv:URL ...`
    obs, info = env.reset(seed=7)
    obs, reward, terminated, truncated, info = env.step('{"message": "hi"}')

One env is one OpenEnv WebSocket session (`URL/ws`, OpenEnv's `reset`/`step`/`state`
frames). How agenthub's chat turns map onto OpenEnv's typed actions and observations:

- a server that is `agenthub serve` (its action schema is `AgentHubAction`) is played
  as the env it serves: its messages, tools, rewards and info pass through unchanged;
- any other server: its action schema (`GET URL/schema`) becomes one tool, `act`,
  whose arguments are the action; plain text is also an action when it is a JSON
  object, or when the action schema has exactly one required string field (the text
  fills it: e.g. echo's `message`). Each observation is one message whose content is
  the observation as JSON (a `tool` message answering an `act` call, else `user`);
  `info["observation"]` keeps it as a dict. At episode end `outcome` is the last
  reward and `success` is `outcome > 0` (OpenEnv has no notion of success).

An action that fits neither form, or that the server rejects (a validation or
execution error), gets an `Error: ...` observation and the episode goes on; only a
lost connection or a timeout raises `OpenEnvError`.
"""

from __future__ import annotations

import json
from typing import Any

from agenthub.actions import Action
from agenthub.env import Env, StepResult
from agenthub.errors import AgentHubError
from agenthub.env_spec import EnvSpec
from agenthub.types import Message, ToolSpec

PREFIX = "openenv:"
AGENTHUB_ACTION = "AgentHubAction"  # the action schema title of `agenthub serve`'s OpenEnv routes
ACT_TOOL = "act"


class OpenEnvError(AgentHubError):
    """The OpenEnv server is unreachable, closed the session, or did not answer in time."""


class OpenEnvSpec(EnvSpec):
    """The spec of an `openenv:URL` id (not registered: any URL names an env)."""

    @property
    def family(self) -> str:
        return "openenv"

    @property
    def version(self) -> int:
        return 0


def openenv_spec(env_id: str) -> EnvSpec:
    """The spec for `openenv:URL`; raises AgentHubError when URL is not http(s)/ws(s)."""
    url = env_id[len(PREFIX):]
    if not url.startswith(("http://", "https://", "ws://", "wss://")):
        raise AgentHubError(f"{env_id!r}: expected openenv:http://HOST:PORT (an OpenEnv server's base URL)")
    return OpenEnvSpec(env_id, lambda **kwargs: OpenEnvEnv(url, **kwargs),
                       description=f"the OpenEnv server at {url}", plugin="openenv")


class OpenEnvEnv(Env):
    max_calls_per_turn = 1  # one OpenEnv action per turn

    def __init__(self, url: str, timeout: float = 300, connect_timeout: float = 30):
        """`url`: the server's base URL (http(s):// or ws(s)://); `timeout`: the longest
        wait for one answer. Raises OpenEnvError when the server cannot be reached."""
        import httpx
        try:
            from websockets.sync.client import connect
        except ImportError:
            raise OpenEnvError("openenv: envs need the websockets package: pip install 'agenthub[server]'") from None

        base = url.rstrip("/")
        self.url, self.timeout = base, timeout
        http = base.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
        try:
            schema = httpx.get(http + "/schema", timeout=connect_timeout).json()
        except (httpx.HTTPError, ValueError) as e:
            raise OpenEnvError(f"cannot read the schema of the OpenEnv server at {url}: {e}") from None
        self.action_schema: dict[str, Any] = schema.get("action") or {} if isinstance(schema, dict) else {}
        self.agenthub = self.action_schema.get("title") == AGENTHUB_ACTION
        self.tools: list[ToolSpec] = [] if self.agenthub else [_act_tool(self.action_schema)]
        if self.agenthub:
            self.max_calls_per_turn = None
            self.max_turns = schema.get("max_turns")
        ws = http.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/ws"
        try:
            self._ws = connect(ws, open_timeout=connect_timeout, max_size=None).__enter__()
        except Exception as e:
            raise OpenEnvError(f"cannot open a session with the OpenEnv server at {url}: {e}") from None
        self._closed = False
        self._last_reward: float = 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[list[Message], dict[str, Any]]:
        """OpenEnv reset with `seed` and `options` as its keyword arguments."""
        super().reset(seed=seed)
        data = {**(options or {}), **({"seed": seed} if seed is not None else {})}
        answer = self._call({"type": "reset", "data": data})
        if answer["type"] == "error":
            raise OpenEnvError(f"the OpenEnv server could not reset: {_error_text(answer)}")
        payload = answer.get("data") or {}
        obs = payload.get("observation") or {}
        self._last_reward = 0.0
        if self.agenthub:
            self.tools = obs.get("tools") or []
            return list(obs.get("messages") or []), dict(obs.get("info") or {})
        return [{"role": "user", "content": _as_text(obs)}], {"observation": obs}

    def step(self, action: Action) -> StepResult:  # type: ignore[override]
        if self.agenthub:
            data: dict[str, Any] = {"content": action.message.get("content") or ""}
            if action.message.get("tool_calls"):
                data["tool_calls"] = action.message["tool_calls"]
            call_id = None
        else:
            data, call_id, problem = self._openenv_action(action)
            if problem is not None:
                return self._error(problem, call_id, "malformed_action")
        answer = self._call({"type": "step", "data": data})
        if answer["type"] == "error":
            return self._error(f"the env rejected the action: {_error_text(answer)}", call_id, "openenv_error")
        payload = answer.get("data") or {}
        obs, done = payload.get("observation") or {}, bool(payload.get("done"))
        reward = float(payload.get("reward") or 0.0)
        if self.agenthub:
            return (list(obs.get("messages") or []), reward, bool(obs.get("terminated")),
                    bool(obs.get("truncated")), dict(obs.get("info") or {}))
        message: Message = ({"role": "tool", "tool_call_id": call_id, "content": _as_text(obs)} if call_id
                            else {"role": "user", "content": _as_text(obs)})
        info: dict[str, Any] = {"observation": obs, "reward_components": {"env": reward}}
        if done:
            info["outcome"] = reward
            info["success"] = reward > 0
        return [message], reward, done, False, info

    def state(self) -> dict[str, Any]:
        """The server's state of this session (OpenEnv's `state` message)."""
        answer = self._call({"type": "state"})
        if answer["type"] == "error":
            raise OpenEnvError(f"the OpenEnv server gave no state: {_error_text(answer)}")
        return dict(answer.get("data") or {})

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._ws.send(json.dumps({"type": "close"}))
                self._ws.recv(timeout=2)  # the server closes its side first: wait for that
            except Exception:
                pass  # closed (as expected), or the server is gone: closing is all that is left
            self._ws.close()

    def _openenv_action(self, action: Action) -> tuple[dict[str, Any], str | None, str | None]:
        """(action object, id of the `act` call it came from, why it is not an action)."""
        if action.calls:
            call = action.calls[0]
            if call.name != ACT_TOOL:
                return {}, call.id, f"unknown tool {call.name!r}; this env's one tool is {ACT_TOOL!r}"
            return call.arguments, call.id, None
        text = str(action).strip()
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value, None, None
        field = _single_text_field(self.action_schema)
        if field is not None and text:
            return {field: text}, None, None
        return {}, None, (f"this env takes actions as JSON objects matching its schema (or a call to the "
                          f"{ACT_TOOL!r} tool): {json.dumps(self.action_schema.get('properties', {}))[:500]}")

    def _error(self, problem: str, call_id: str | None, component: str) -> StepResult:
        text = f"Error: {problem}"
        message: Message = ({"role": "tool", "tool_call_id": call_id, "content": text} if call_id
                            else {"role": "user", "content": text})
        return [message], 0.0, False, False, {"action_error": problem, "reward_components": {component: 1.0}}

    def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed
        if self._closed:
            raise OpenEnvError("this OpenEnv env is closed")
        try:
            self._ws.send(json.dumps(message))
            answer = json.loads(self._ws.recv(timeout=self.timeout))
        except TimeoutError:
            raise OpenEnvError(f"no answer from the OpenEnv server at {self.url} within {self.timeout:g}s") from None
        except ConnectionClosed as e:
            raise OpenEnvError(f"the session with the OpenEnv server at {self.url} ended: {e}") from None
        except ValueError as e:
            raise OpenEnvError(f"the OpenEnv server at {self.url} sent a frame that is not JSON: {e}") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("type"), str):
            raise OpenEnvError(f"the OpenEnv server at {self.url} sent an unexpected frame: {str(answer)[:200]}")
        return answer


def _act_tool(action_schema: dict[str, Any]) -> ToolSpec:
    """The one tool of a non-agenthub OpenEnv env: its arguments are an action."""
    params = {k: v for k, v in action_schema.items() if k not in ("title", "description")} or {"type": "object"}
    params.setdefault("type", "object")
    what = action_schema.get("description") or action_schema.get("title") or "an action"
    return {"type": "function", "function": {"name": ACT_TOOL, "description": f"Take one step: {what}",
                                             "parameters": params}}


def _single_text_field(action_schema: dict[str, Any]) -> str | None:
    """The action's one required string field, if it has exactly one required field."""
    required = action_schema.get("required") or []
    props = action_schema.get("properties") or {}
    if len(required) == 1 and (props.get(required[0]) or {}).get("type") == "string":
        return str(required[0])
    return None


def _as_text(observation: Any) -> str:
    return json.dumps(observation, ensure_ascii=False, default=str)


def _error_text(answer: dict[str, Any]) -> str:
    data = answer.get("data") or {}
    if not isinstance(data, dict):
        return str(data)[:300]
    errors = data.get("errors")
    detail = f" {json.dumps(errors, default=str)[:300]}" if errors else ""
    return f"{data.get('message', 'unknown error')} ({data.get('code', 'UNKNOWN')}){detail}"
