"""Env ids, registration, plugins and `make`.

Ids are `FAMILY/NAME-vN`. Built-in families and third-party distributions register
the same way: an entry point in the group `agenthub.environments` names a callable
that calls `register` for its envs; all such callables run once, the first time the
registry is read. Every id is mirrored into gymnasium's registry under the same id, so
`gymnasium.make("agenthub:textworld/w2-o3-q4-v0")` works (gymnasium imports `agenthub`
first); gymnasium's id grammar allows one `/`, so `agenthub/<id>` cannot be its name.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import re
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium

from agenthub.env import Env, EpisodeContract
from agenthub.errors import AgentHubError, UnknownEnvError
from agenthub.loading import load_object

ENTRY_POINT_GROUP = "agenthub.environments"
_ID = re.compile(r"^(?P<family>[a-z0-9][a-z0-9_.-]*)/(?P<name>[A-Za-z0-9][A-Za-z0-9_.+-]*?)-v(?P<version>\d+)$")


@dataclass
class EnvSpec:
    id: str
    entry_point: str | Callable[..., Env]
    max_turns: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    plugin: str = "agenthub"  # the distribution that registered it

    @property
    def family(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def version(self) -> int:
        return int(_ID.match(self.id).group("version"))  # type: ignore[union-attr]

    def to_dict(self) -> dict[str, Any]:
        ep = self.entry_point if isinstance(self.entry_point, str) else \
            f"{self.entry_point.__module__}:{self.entry_point.__qualname__}"
        return {"id": self.id, "family": self.family, "version": self.version, "entry_point": ep,
                "max_turns": self.max_turns, "kwargs": self.kwargs, "description": self.description,
                "plugin": self.plugin}


_specs: dict[str, EnvSpec] = {}
_plugins_loaded = False
_plugin_errors: list[str] = []
_lock = threading.RLock()
_current_plugin = "agenthub"


def register(id: str, entry_point: str | Callable[..., Env], max_turns: int | None = None,
             description: str = "", **kwargs: Any) -> EnvSpec:
    """Register an env; `entry_point` is "module:Class" or a callable returning an Env."""
    if not _ID.match(id):
        raise AgentHubError(f"invalid env id {id!r}: expected FAMILY/NAME-vN, e.g. 'myorg/maze-v0'")
    spec = EnvSpec(id, entry_point, max_turns, kwargs, description, _current_plugin)
    with _lock:
        previous = _specs.get(id)
        _specs[id] = spec
    if previous is not None and previous.entry_point != entry_point:
        warnings.warn(f"env id {id!r} registered again: {entry_point!r} replaces {previous.entry_point!r}",
                      stacklevel=2)
    if id not in gymnasium.registry:
        gymnasium.register(id, entry_point=_gymnasium_entry_point(id), disable_env_checker=True,
                           order_enforce=False)
    return spec


def _gymnasium_entry_point(id: str) -> Callable[..., Env]:
    def make_for_gymnasium(**kwargs: Any) -> Env:
        return make(id, **kwargs)
    return make_for_gymnasium


def load_plugins() -> None:
    """Run every `agenthub.environments` entry point once; a broken plugin only warns."""
    global _plugins_loaded, _current_plugin
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            _current_plugin = ep.dist.name if ep.dist else ep.name
            try:
                ep.load()()
            except Exception as e:  # one broken plugin must not take the hub down
                _plugin_errors.append(f"{ep.name}: {e}")
                warnings.warn(f"agenthub plugin {ep.value!r} failed to register: {e}", stacklevel=2)
            finally:
                _current_plugin = "agenthub"


def list_envs() -> list[EnvSpec]:
    load_plugins()
    return sorted(_specs.values(), key=lambda s: s.id)


def spec(id: str) -> EnvSpec:
    """The spec for `id`; an id without `-vN` means its latest version; `openenv:URL`
    names the OpenEnv server at URL (`agenthub.openenv_env`)."""
    if id.startswith("openenv:"):
        from agenthub.openenv_env import openenv_spec
        return openenv_spec(id)
    load_plugins()
    if id in _specs:
        return _specs[id]
    versions = [s for s in _specs.values() if s.id.rsplit("-v", 1)[0] == id]
    if versions:
        return max(versions, key=lambda s: s.version)
    close = difflib.get_close_matches(id, list(_specs), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `agenthub list` shows the registered ids"
    raise UnknownEnvError(f"unknown env id {id!r}{hint}")


def make(id: str, sandbox: str | None = None, max_turns: int | None = None, tool_parser: str | None = None,
         **kwargs: Any) -> Env:
    """Build an env by id, held to the episode contract (see `agenthub.env`).

    `tool_parser` names how model text is read for tool calls (`agenthub.tool_parsers`).

    `sandbox="docker"` (or another backend) runs the env behind `agenthub serve` inside
    a container and returns a `RemoteEnv` client for it.
    """
    s = spec(id)
    if sandbox is not None:
        from agenthub.containerized import make_containerized
        from agenthub.tool_parsers import get_tool_parser
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
