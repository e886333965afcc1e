"""`make`: an env by id, built here or, with `sandbox=`, in a container behind a client.

Above both the registry (which only records specs) and the containerised wing
(`agenthub.containerized`, which looks specs up), so neither imports the other back.
"""

from __future__ import annotations

from typing import Any, Callable

from agenthub.contract import EpisodeContract
from agenthub.env import Env
from agenthub.errors import AgentHubError
from agenthub.loading import load_object
from agenthub.registry import spec
from agenthub.tool_parsers import get_tool_parser


def make(id: str, sandbox: str | None = None, max_turns: int | None = None, tool_parser: str | None = None,
         **kwargs: Any) -> Env:
    """Build an env by id, held to the episode contract (see `agenthub.env`).

    `tool_parser` names how model text is read for tool calls (`agenthub.tool_parsers`).

    `sandbox="docker"` (or another backend) runs the env behind `agenthub serve` inside
    a container and returns a `RemoteEnv` client for it.
    """
    s = spec(id)
    if sandbox is not None:
        from agenthub.containerized import make_containerized  # client and sandbox deps: on first use
        get_tool_parser(tool_parser)  # an unknown name fails before a container starts
        remote = make_containerized(s.id, backend=sandbox, max_turns=max_turns, **kwargs)
        remote.tool_parser = tool_parser  # model text is read here, the server gets the calls
        return remote
    factory = _load_entry_point(s.entry_point)
    env = factory(**{**s.kwargs, **kwargs})
    if not isinstance(env, Env):
        raise AgentHubError(f"{s.id}: entry point returned {type(env).__name__}, not an agenthub.Env")
    return EpisodeContract(env, s.id, max_turns if max_turns is not None else s.max_turns, tool_parser)


def _load_entry_point(entry_point: str | Callable[..., Env]) -> Callable[..., Env]:
    return entry_point if callable(entry_point) else load_object(entry_point, "env entry point")
