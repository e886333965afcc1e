"""agenthub: multi-turn RL environments for LLM agents, reward modules and trainers.

The public surface (DESIGN.md): `make`, `register`, `list_envs`, `load_suite`, `Env`,
`RemoteEnv`, `Trajectory`, `read_trajectories`, and the `sandbox`, `rewards`,
`trainers` and `environments` subpackages.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from agenthub.actions import Action, Call, parse_action
from agenthub.contract import EpisodeContract
from agenthub.env import Env, Wrapper
from agenthub.errors import AgentHubError, UnknownEnvError
from agenthub.factory import make
from agenthub.registry import EnvSpec, list_envs, register, spec
from agenthub.suites import Task, list_suites, load_suite, register_suite
from agenthub.types import Message, ToolCall, ToolSpec, Trajectory, Turn, read_trajectories, tool_spec

__all__ = [
    "Action", "AgentHubError", "Call", "Env", "EnvSpec", "EpisodeContract", "Message", "RemoteEnv", "Task",
    "ToolCall", "ToolSpec", "Trajectory", "Turn", "UnknownEnvError", "Wrapper", "list_envs", "list_suites",
    "load_suite", "make", "parse_action", "read_trajectories", "register", "register_suite", "spec",
    "tool_spec",
]


def __getattr__(name: str) -> Any:
    # The server client and the sandbox pull in optional dependencies: import on first use.
    if name == "RemoteEnv":
        from agenthub.client import RemoteEnv
        return RemoteEnv
    if name in ("sandbox", "rewards", "trainers", "environments"):
        import importlib
        return importlib.import_module(f"agenthub.{name}")
    raise AttributeError(f"module 'agenthub' has no attribute {name!r}")


# Register the built-in families and installed plugins now, so that after `import agenthub`
# every env is also reachable through `gymnasium.make`. Registration functions only
# record specs; no env dependency is imported here.
from agenthub.registry import load_plugins as _load_plugins  # noqa: E402

_load_plugins()
