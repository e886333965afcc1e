"""Sandboxes: run untrusted commands with limits, on docker, bwrap or the local host.

    from agenthub import sandbox
    with sandbox.open("bwrap", memory="1g", cpus=1, pids=256) as box:
        r = box.exec("python3 -c 'print(1)'", timeout=10)   # r.exit_code, r.stdout, ...
        box.write_file("/workspace/a.txt", "hi")

Backends, strongest first:
- `docker`: a container from a locally built image (`agenthub sandbox build`), no network,
  read-only root, non-root user, no capabilities, memory/CPU/pids limits, sized tmpfs work dir.
- `bwrap`: bubblewrap namespaces per exec, read-only host system dirs, private work dir.
- `local`: host processes with limits only; for development, NOT a security boundary,
  used only when asked for by name (no env falls back to it: `check` says how to get
  bwrap or Docker).

On every backend nothing an exec starts outlives it, and the host's file operations
(`read_file`, `write_file`, `upload_dir`, `download_dir`) never follow a link the
sandbox planted out of its work dir: they raise `SandboxPathError` instead.

`Pool` keeps sandboxes started ahead of need; `reap()` removes ones leaked by dead processes.
"""

from __future__ import annotations

from typing import Any

from agenthub.loading import load_object
from agenthub.sandbox.base import Command, ExecResult, Limits, Sandbox, SandboxError, SandboxPathError, parse_size
from agenthub.sandbox.pool import Pool

BACKENDS = {
    "docker": "agenthub.sandbox.docker_sandbox:DockerSandbox",
    "bwrap": "agenthub.sandbox.bwrap:BwrapSandbox",
    "local": "agenthub.sandbox.local:LocalSandbox",
}

__all__ = ["BACKENDS", "HOW_TO_ISOLATE", "Command", "ExecResult", "Limits", "Pool", "Sandbox", "SandboxError",
           "SandboxPathError", "check", "open", "parse_size", "reap"]

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
