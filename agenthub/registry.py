"""Env ids, registration and plugins (`make` is in `agenthub.factory`).

Ids are `FAMILY/NAME-vN`. Built-in families and third-party distributions register
the same way: an entry point in the group `agenthub.environments` names a callable
that calls `register` for its envs; all such callables run once, the first time the
registry is read. Every id is mirrored into gymnasium's registry under the same id, so
`gymnasium.make("agenthub:textworld/w2-o3-q4-v0")` works (gymnasium imports `agenthub`
first); gymnasium's id grammar allows one `/`, so `agenthub/<id>` cannot be its name.
"""

from __future__ import annotations

import importlib.metadata
import threading
import warnings
from typing import Any, Callable

import gymnasium

from agenthub.env import Env
from agenthub.env_spec import ID_PATTERN, EnvSpec
from agenthub.errors import AgentHubError, UnknownEnvError, did_you_mean

ENTRY_POINT_GROUP = "agenthub.environments"
_specs: dict[str, EnvSpec] = {}
_commands: dict[str, str] = {}
_plugins_loaded = False
_plugin_errors: list[str] = []
_lock = threading.RLock()
_current_plugin = "agenthub"


def register(id: str, entry_point: str | Callable[..., Env], max_turns: int | None = None,
             description: str = "", **kwargs: Any) -> EnvSpec:
    """Register an env; `entry_point` is "module:Class" or a callable returning an Env."""
    if not ID_PATTERN.match(id):
        raise AgentHubError(f"invalid env id {id!r}: expected FAMILY/NAME-vN, e.g. 'myorg/maze-v0'")
    spec = EnvSpec(id, entry_point, max_turns, kwargs, description, _current_plugin)
    with _lock:
        previous = _specs.get(id)
        _specs[id] = spec
    if previous is not None and previous.entry_point != entry_point:
        warnings.warn(f"env id {id!r} registered again: {entry_point!r} replaces {previous.entry_point!r}",
                      stacklevel=2)
    if id not in gymnasium.registry:
        # by name: gymnasium resolves it when the env is made, so this module needs no `make`
        gymnasium.register(id, entry_point="agenthub.factory:make", kwargs={"id": id}, disable_env_checker=True,
                           order_enforce=False)
    return spec


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


def register_command(name: str, add_commands: str) -> None:
    """Add `agenthub NAME ...` to the CLI: `add_commands` ("module:function") is called with
    the CLI's subparsers, so a family adds its own subcommands when it registers its envs."""
    with _lock:
        _commands[name] = add_commands


def commands() -> dict[str, str]:
    """CLI command name -> "module:function" registered by the families and plugins."""
    load_plugins()
    return dict(_commands)


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
    hint = did_you_mean(id, list(_specs)) or "; `agenthub list` shows the registered ids"
    raise UnknownEnvError(f"unknown env id {id!r}{hint}")
