"""Env sessions on Ray actors, so env-heavy suites (SWE, web) scale past one machine.

Only the envs move: each env session lives in a Ray actor (an `EnvWorker`), anywhere
on the cluster, while the agent stays in the driver, where the model is. The driver
sends actions and gets observations back. This fits the core runner unchanged:
`RayEnvPool.make` is a drop-in `make_env` for `run_episodes`, returning a `RayEnv`
proxy whose `reset`/`step` are calls to its actor, so timeouts, error isolation,
trajectory writing and progress all stay the runner's.

Actors are pooled (starting a worker process costs about a second) and each holds one
env session at a time with `cpus_per_env` CPUs reserved, so Ray spreads them over the
nodes. When an actor dies mid-episode (node lost, OOM kill, `ray.kill`), the episode
is retried once on a fresh actor: the env is rebuilt, reset with the same seed and the
actions so far are replayed. Envs are deterministic given seed and actions (DESIGN.md),
and the replay checks that: if the replayed observations differ, or the new actor dies
too, the episode ends with stop reason `error` and the run goes on.

    with RayEnvPool("local", size=8) as pool:          # or an address: "auto", "ray://head:10001"
        trajs = run_episodes(episodes, agent, concurrency=8, make_env=pool.make)
"""

from __future__ import annotations

import os
import queue
import socket
import threading
from typing import Any

from agenthub.agents.base import Agent
from agenthub.env import Env, StepResult
from agenthub.errors import AgentHubError, UnknownEnvError
from agenthub.factory import make
from agenthub.registry import EnvSpec, register, spec
from agenthub.runner import Episode, run_episodes
from agenthub.types import Message, Trajectory


class EnvWorkerLost(RuntimeError):
    """An env's actor died and the episode could not be resumed on a new one."""


class EnvWorker:
    """The Ray actor: holds one env session at a time, built with `agenthub.make`."""

    def __init__(self) -> None:
        self.env: Env | None = None

    def open(self, env_spec: EnvSpec, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.close()
        try:
            spec(env_spec.id)
        except UnknownEnvError:  # registered at run time in the driver, not by a plugin: register it here too
            register(env_spec.id, env_spec.entry_point, env_spec.max_turns, env_spec.description, **env_spec.kwargs)
        self.env = make(env_spec.id, **kwargs)
        return {"tools": self.env.tools, "max_turns": self.env.max_turns, "version": self.env.version,
                "image_digest": getattr(self.env, "image_digest", None),
                "host": socket.gethostname(), "pid": os.getpid()}

    def reset(self, seed: int | None, options: dict[str, Any] | None) -> tuple[list[Message], dict[str, Any]]:
        return self._env.reset(seed=seed, options=options)

    def step(self, action: Any) -> StepResult:
        return self._env.step(action)

    def oracle_actions(self) -> list[str | Message]:
        return self._env.oracle_actions()

    def close(self) -> None:
        env, self.env = self.env, None
        if env is not None:
            env.close()

    @property
    def _env(self) -> Env:
        if self.env is None:
            raise RuntimeError("no env is open in this worker")
        return self.env


class RayEnvPool:
    """A pool of `EnvWorker` actors on a Ray cluster; `make` opens an env session on one.

    `address`: "local" starts a Ray instance on this machine; anything else ("auto",
    "ray://head:10001", "head:6379") connects to a running cluster. If this process has
    already called `ray.init`, that connection is used. At most `size` actors run at
    once, fewer if the cluster has fewer than `size * cpus_per_env` CPUs; a `make` that
    finds every actor busy waits for one.
    """

    def __init__(self, address: str = "local", size: int = 4, cpus_per_env: float = 1.0, retries: int = 1):
        try:
            import ray
        except ImportError as e:
            raise AgentHubError("Ray support needs the ray extra: pip install 'agenthub[ray]'") from e
        self.ray = ray
        self.retries = retries
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            _check_reachable(address)
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise AgentHubError(f"cannot reach a Ray cluster at {address!r}: {e}") from e
        cpus = ray.cluster_resources().get("CPU", 0.0)
        self.size = max(1, min(size, int(cpus // cpus_per_env))) if cpus_per_env > 0 else max(1, size)
        self._actor_class = ray.remote(EnvWorker).options(num_cpus=cpus_per_env, max_restarts=0)
        self._idle: queue.Queue[Any] = queue.Queue()
        self._actors: set[Any] = set()
        self._lock = threading.Lock()

    def make(self, env_id: str, **kwargs: Any) -> RayEnv:
        """A `make_env` for `run_episodes`: the env `agenthub.make(env_id, **kwargs)` on an actor."""
        return RayEnv(self, spec(env_id), kwargs)

    def acquire(self) -> Any:
        with self._lock:
            if self._idle.empty() and len(self._actors) < self.size:
                return self._start_actor()
        return self._idle.get()

    def release(self, actor: Any) -> None:
        self._idle.put(actor)

    def replace(self, actor: Any) -> Any:
        """Kill `actor` (dead, or stuck in a call) and start a fresh one in its place."""
        self.ray.kill(actor, no_restart=True)
        with self._lock:
            self._actors.discard(actor)
            return self._start_actor()

    def _start_actor(self) -> Any:
        actor = self._actor_class.remote()
        self._actors.add(actor)
        return actor

    def close(self) -> None:
        with self._lock:
            actors, self._actors = list(self._actors), set()
        for actor in actors:
            self.ray.kill(actor, no_restart=True)
        if self._owns_ray:
            self.ray.shutdown()

    def __enter__(self) -> RayEnvPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RayEnv(Env):
    """The driver's handle on an env session that lives in an `EnvWorker` actor.

    It has what agents read from `ctx.env` (`tools`, `max_turns`, `version`,
    `oracle_actions()`), plus `worker` (the host and pid the env runs in) and `actor`.
    """

    def __init__(self, pool: RayEnvPool, env_spec: EnvSpec, kwargs: dict[str, Any]):
        self._pool, self._spec, self._kwargs = pool, env_spec, kwargs
        self._retries_left = pool.retries
        self._history: list[tuple[str, tuple[Any, ...], list[Message]]] = []  # calls to replay, with their observations
        self._closed = False
        self._in_call = False
        self._actor = pool.acquire()
        self._needs_restore = False
        self._describe(self._call("open", env_spec, kwargs))

    def _describe(self, description: dict[str, Any]) -> None:
        self.tools = description["tools"]
        self.max_turns = description["max_turns"]
        self.version = description["version"]
        self.image_digest = description["image_digest"]
        self.worker = {"host": description["host"], "pid": description["pid"]}

    @property
    def actor(self) -> Any:
        """The Ray actor handle the env currently lives in."""
        return self._actor

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[list[Message], dict[str, Any]]:
        obs, info = self._call("reset", seed, options)
        self._history = [("reset", (seed, options), obs)]
        return obs, info

    def step(self, action: Any) -> StepResult:  # type: ignore[override]
        result = self._call("step", action)
        self._history.append(("step", (action,), result[0]))
        return result

    def oracle_actions(self) -> list[str | Message]:
        return self._call("oracle_actions")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        actor = self._actor
        if not self._in_call:
            try:
                self._pool.ray.get(actor.close.remote())
                self._pool.release(actor)
                return
            except Exception:
                pass
        # a hung call (the runner gave up on this episode) or a failed close: a fresh actor takes its place
        self._pool.release(self._pool.replace(actor))

    def _call(self, method: str, *args: Any) -> Any:
        ray = self._pool.ray
        while True:
            self._in_call = True
            try:
                if self._needs_restore:
                    self._describe(self._restore())
                    self._needs_restore = False
                return ray.get(getattr(self._actor, method).remote(*args))
            except ray.exceptions.RayActorError as e:
                if self._closed:
                    raise EnvWorkerLost("the env's worker was stopped") from e
                if self._retries_left <= 0:
                    raise EnvWorkerLost(f"the env's Ray actor died ({type(e).__name__}) and no retry is left "
                                        f"(retries: {self._pool.retries})") from e
                self._retries_left -= 1
                self._actor = self._pool.replace(self._actor)
                self._needs_restore = True
            finally:
                self._in_call = False

    def _restore(self) -> dict[str, Any]:
        """Open the env on the (new) actor and replay this episode's calls on it."""
        ray = self._pool.ray
        description = ray.get(self._actor.open.remote(self._spec, self._kwargs))
        for turn, (method, args, observation) in enumerate(self._history):
            replayed = ray.get(getattr(self._actor, method).remote(*args))[0]
            if replayed != observation:
                raise EnvWorkerLost(f"the env's Ray actor died, and replaying the episode on a new one gave "
                                    f"other observations at turn {turn}: the env is not deterministic, so "
                                    "the episode cannot resume")
        return description


def run_episodes_ray(episodes: list[Episode], agent: Agent, *, address: str = "local", concurrency: int = 4,
                     cpus_per_env: float = 1.0, **runner_options: Any) -> list[Trajectory]:
    """`run_episodes` with every env on a Ray actor (see `RayEnvPool`); same options."""
    with RayEnvPool(address, size=concurrency, cpus_per_env=cpus_per_env) as pool:
        return run_episodes(episodes, agent, concurrency=concurrency, make_env=pool.make, **runner_options)


def _check_reachable(address: str) -> None:
    """Fail fast on a HOST:PORT that nothing answers: `ray.init` would retry for minutes."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "local", "auto": Ray itself answers at once
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise AgentHubError(f"cannot reach a Ray cluster at {address!r}: {e}") from e
