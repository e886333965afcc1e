"""Choosing a sandbox backend by name: `open` starts one, `check` says whether one can
start here, `reap` removes those leaked by dead processes. Backends are found by name
(`BACKENDS`), so only the one asked for is imported."""

from __future__ import annotations

from typing import Any

from agenthub.loading import load_object
from agenthub.sandbox.base import Limits, Sandbox, SandboxError

BACKENDS = {
    "docker": "agenthub.sandbox.docker_sandbox:DockerSandbox",
    "bwrap": "agenthub.sandbox.bwrap:BwrapSandbox",
    "local": "agenthub.sandbox.local:LocalSandbox",
}

HOW_TO_ISOLATE = ("To run agent code isolated, install bubblewrap (`apt-get install bubblewrap`; it needs "
                  "unprivileged user namespaces) or Docker (a running daemon, then `agenthub sandbox build`), "
                  "or ask for the `local` backend by name to run it on this host with no isolation.")
"""How to get a sandbox: for errors where an env would otherwise run agent code unisolated."""


def open(backend: str = "docker", image: str | None = None, memory: int | str = "1g", cpus: float = 1,
         pids: int = 256, network: bool = False, workdir: str = "/workspace", disk: int | str | None = "1g",
         **options: Any) -> Sandbox:
    """Start a sandbox; use it as a context manager so it is always closed.

    `image`: docker: an image tag (default: the base image, built if missing);
    bwrap: a root filesystem directory (default: the host's system dirs, read-only);
    local: none. `options` go to the backend (docker: `command`, `mounts`, `labels`).
    """
    if backend not in BACKENDS:
        raise SandboxError(f"unknown sandbox backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    cls = load_object(BACKENDS[backend], "sandbox backend")
    return cls(Limits.of(memory, cpus, pids, network, disk), workdir=workdir, image=image, **options)


def check(backend: str) -> None:
    """Raise SandboxError, with how to get a sandbox, unless `backend` can start here
    (cheap: no sandbox is opened; docker: a daemon answers)."""
    if backend not in BACKENDS:
        raise SandboxError(f"unknown sandbox backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    try:
        if backend == "bwrap":
            from agenthub.sandbox.bwrap import check_bwrap
            check_bwrap()
        elif backend == "docker":
            from agenthub.sandbox.images import docker_client
            docker_client()
    except SandboxError as e:
        raise SandboxError(f"the {backend} sandbox cannot start here: {e}. {HOW_TO_ISOLATE}") from None


def reap(max_age: float | None = None) -> int:
    """Remove sandboxes whose owning process is gone (or older than `max_age` seconds);
    returns how many were removed."""
    from agenthub.sandbox.reaper import reap as _reap
    return _reap(max_age)
