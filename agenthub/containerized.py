"""Containerised envs: `agenthub.make(env_id, sandbox="docker")`.

The env's server (`agenthub serve ENV_ID`) runs inside a locked-down container from the
env's image (see `agenthub.sandbox.images`); the container has no network at all, so
the server listens on a unix socket in a host directory bound into the container, and
the caller gets a `RemoteEnv` speaking through it. The socket's directory is open to
every local user (the container's user creates the socket), so each container's server
gets its own random token (in its environment, not on its command line) and only the
`RemoteEnv` made here knows it. `close()` removes the container.

Starting a container and its server takes a second or two; `container_pool` keeps env
containers started ahead of need, and `make(env_id, sandbox="docker", pool=pool)` takes
one from it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from agenthub.auth import TOKEN_ENV, new_token
from agenthub.client import RemoteEnv
from agenthub.sandbox.pool import Pool
from agenthub.errors import AgentHubError

SOCKET_DIR = "/run/agenthub"
START_TIMEOUT = 60.0


class EnvContainer:
    """A container running `agenthub serve ENV_ID` on a unix socket, ready for one client."""

    def __init__(self, env_id: str, backend: str = "docker", max_turns: int | None = None,
                 env_kwargs: dict[str, Any] | None = None, image: str | None = None,
                 memory: str = "2g", cpus: float = 1, pids: int = 512):
        if backend != "docker":
            raise AgentHubError(f"containerised envs run on the docker backend, not {backend!r}; "
                                f"use sandbox='docker' (or make the env in-process)")
        from agenthub.sandbox import Limits
        from agenthub.sandbox.docker_sandbox import DockerSandbox
        from agenthub.sandbox.images import image_for_env

        self.env_id = env_id
        self.token = new_token()
        self.socket_dir = Path(tempfile.mkdtemp(prefix="agenthub-env-"))
        self.socket_dir.chmod(0o777)  # the container's non-root user creates the socket here
        command = ["python", "-m", "agenthub", "serve", env_id, "--uds", f"{SOCKET_DIR}/server.sock",
                   "--max-sessions", "1", "--env-kwargs", json.dumps(env_kwargs or {})]
        if max_turns is not None:
            command += ["--max-turns", str(max_turns)]
        try:
            self.box = DockerSandbox(Limits.of(memory, cpus, pids), image=image or image_for_env(env_id),
                                     command=command, mounts={str(self.socket_dir): SOCKET_DIR},
                                     labels={"agenthub.env_id": env_id}, environment={TOKEN_ENV: self.token})
        except Exception:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            raise
        self.url = f"unix:{self.socket_dir / 'server.sock'}"
        try:
            self._wait_ready()
        except Exception:
            self.close()
            raise

    @property
    def image_id(self) -> str:
        """The image digest, for trajectory provenance."""
        return self.box.container.image.id

    def _wait_ready(self) -> None:
        import httpx
        transport = httpx.HTTPTransport(uds=str(self.socket_dir / "server.sock"))
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(transport=transport, timeout=5) as http:
            while time.monotonic() < deadline:
                if (self.socket_dir / "server.sock").exists():
                    try:
                        if http.get("http://localhost/health").status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                if not self.box.is_alive():
                    tail = " | ".join(self.box.logs().strip().splitlines()[-3:])
                    raise AgentHubError(f"the env server for {self.env_id} died in its container: {tail}")
                time.sleep(0.05)
        raise AgentHubError(f"the env server for {self.env_id} did not start within {START_TIMEOUT:g}s")

    def is_alive(self) -> bool:
        return self.box.is_alive() and (self.socket_dir / "server.sock").exists()

    def close(self) -> None:
        self.box.close()
        shutil.rmtree(self.socket_dir, ignore_errors=True)


class ContainerizedEnv(RemoteEnv):
    """A RemoteEnv that owns its container: closing the env removes the container."""

    def __init__(self, container: EnvContainer, timeout: float = 300):
        self.container = container
        try:
            super().__init__(container.url, container.env_id, timeout=timeout, token=container.token)
        except Exception:
            container.close()
            raise
        self.image_digest = container.image_id  # the runner records it as trajectory provenance

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.container.close()


def make_containerized(env_id: str, backend: str = "docker", max_turns: int | None = None,
                       pool: Pool[EnvContainer] | None = None, sandbox_options: dict[str, Any] | None = None,
                       **env_kwargs: Any) -> ContainerizedEnv:
    """What `agenthub.make(env_id, sandbox=backend, ...)` returns. `pool` (from
    `container_pool`) supplies an already started container; `sandbox_options` go to
    `EnvContainer` (image, memory, cpus, pids); other keyword arguments go to the env."""
    if pool is not None:
        container = pool.acquire()
        if container.env_id != env_id:
            container.close()
            raise AgentHubError(f"this pool holds containers for {container.env_id}, not {env_id}")
        return ContainerizedEnv(container)
    return ContainerizedEnv(EnvContainer(env_id, backend, max_turns, env_kwargs, **(sandbox_options or {})))


def container_pool(env_id: str, size: int = 2, max_turns: int | None = None, check_interval: float = 5.0,
                   sandbox_options: dict[str, Any] | None = None, **env_kwargs: Any) -> Pool[EnvContainer]:
    """A warm pool of env containers for `make(env_id, sandbox="docker", pool=...)`."""
    from agenthub.registry import spec
    from agenthub.sandbox.images import image_for_env

    env_id = spec(env_id).id
    options = {"image": image_for_env(env_id), **(sandbox_options or {})}  # build once, before the filler runs
    return Pool(lambda: EnvContainer(env_id, "docker", max_turns, env_kwargs, **options), size, check_interval)
