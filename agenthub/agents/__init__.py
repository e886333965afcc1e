"""Agents: what acts in an episode. `load_agent` turns a CLI spec into one.

Specs: `random`, `oracle`, `hf:PATH`, `vllm:PATH`, `openai:BASE_URL#MODEL[?OPTION=VALUE&...]`
(options `tool_parser`, `temperature`, `max_tokens`, `max_completion_tokens`, `reasoning_effort`;
any request field via `agenthub eval --agent-option`), or `MODULE:CALLABLE` (a callable
`(messages, ctx) -> str | message`, or a zero-argument factory / class that returns an
object with `act`).

Agent kinds `KIND:REST` beyond these are classes called as `cls(REST, **options)`, found by
name: the model-backed kinds in `AGENT_KINDS` (they live with the trainer, so the core
never imports torch), and any a distribution registers under the entry-point group
`agenthub.agents` (`[project.entry-points."agenthub.agents"] mykind = "pkg.mod:MyAgent"`).

An agent may name how its model writes tool calls with a `tool_parser` attribute (see
`agenthub.tool_parsers`); the runner reads its actions with that parser, else the env's.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from typing import Any, Callable
from urllib.parse import parse_qsl

from agenthub.agents.base import Agent, Context, ContextOverflow, Reply
from agenthub.errors import AgentHubError
from agenthub.loading import load_object
from agenthub.types import Message

__all__ = ["AGENT_KINDS", "Agent", "Context", "ContextOverflow", "Reply", "load_agent"]

ENTRY_POINT_GROUP = "agenthub.agents"

# kind -> (class as "module:attr", the pip extra it needs). Looked up by name on purpose:
# these modules import torch, and the core must not depend on the trainer.
AGENT_KINDS: dict[str, tuple[str, str]] = {
    "hf": ("agenthub.trainers.model_agents:HFAgent", "train"),
    "vllm": ("agenthub.trainers.vllm_engine:VLLMAgent", "vllm"),
}


class CallableAgent:
    """Adapts a plain function `(messages, ctx) -> str | message` to the Agent protocol."""

    def __init__(self, fn: Callable[[list[Message], Context], Any], name: str):
        self.fn, self.name = fn, name
        self.tool_parser = getattr(fn, "tool_parser", None)

    def act(self, messages: list[Message], ctx: Context) -> Any:
        return self.fn(messages, ctx)


def load_agent(spec: str, **options: Any) -> Agent:
    kind, _, rest = spec.partition(":")
    if spec == "random":
        from agenthub.agents.random import RandomAgent
        return RandomAgent(**options)
    if spec == "oracle":
        from agenthub.agents.oracle import OracleAgent
        return OracleAgent()
    if kind in _agent_kinds() and rest:
        return _agent_kind(kind)(rest, **options)
    if kind == "openai" and "#" in rest:
        from agenthub.agents.openai import OpenAIAgent
        base_url, _, model = rest.partition("#")
        model, _, query = model.partition("?")
        return OpenAIAgent(base_url, model, **{**_query_options(spec, query, _OPENAI_OPTIONS), **options})
    if kind and rest and kind != "openai":
        return _load_callable(spec)
    raise AgentHubError(f"bad agent spec {spec!r}: use random | oracle | hf:PATH | vllm:PATH | "
                        "openai:BASE_URL#MODEL | MODULE:CALLABLE")


_OPENAI_OPTIONS: dict[str, type] = {"tool_parser": str, "temperature": float, "max_tokens": int,
                                    "max_completion_tokens": int, "reasoning_effort": str}


def _agent_kinds() -> dict[str, tuple[str, str | None]]:
    """Built-in kinds plus those registered under the `agenthub.agents` entry-point group."""
    kinds: dict[str, tuple[str, str | None]] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        kinds.setdefault(ep.name, (ep.value, None))
    return {**kinds, **AGENT_KINDS}  # built-ins win: `hf:` always means the same thing


def _agent_kind(kind: str) -> Callable[..., Agent]:
    target, extra = _agent_kinds()[kind]
    try:
        return load_object(target, f"{kind}: agent")
    except AgentHubError as e:
        if extra is None or not isinstance(e.__cause__, ImportError):
            raise
        raise AgentHubError(f"{kind}: agents need the {extra} extra: pip install 'agenthub[{extra}]' "
                            f"({e.__cause__})") from e


def _query_options(spec: str, query: str, types: dict[str, type]) -> dict[str, Any]:
    """'a=1&b=x' -> {'a': 1, 'b': 'x'} typed by `types`; AgentHubError names a bad one."""
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in types:
            raise AgentHubError(f"unknown option {key!r} in agent {spec!r} (options: {', '.join(types)})")
        try:
            options[key] = types[key](value)
        except ValueError:
            raise AgentHubError(f"option {key}={value!r} in agent {spec!r} is not a valid {types[key].__name__}") \
                from None
    return options


def _load_callable(spec: str) -> Agent:
    obj = load_object(spec, "agent")
    if hasattr(obj, "act"):
        return obj
    if inspect.isclass(obj) or (callable(obj) and not inspect.signature(obj).parameters):
        made = obj()
        if hasattr(made, "act"):
            made.name = getattr(made, "name", spec)
            return made
        obj = made
    if callable(obj):
        return CallableAgent(obj, spec)
    raise AgentHubError(f"agent {spec!r} is neither callable nor has an act() method")
