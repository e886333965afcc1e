"""Removing sandboxes that a crashed or killed process left behind.

A closed sandbox removes itself; a process killed with SIGKILL cannot. Docker
containers and volumes are labelled with their owner ("HOSTNAME:PID") and creation
time; cgroups are named "PID-…". Whatever belongs to a dead process on this host
(or is older than `max_age`) is removed.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from agenthub.sandbox import cgroups


def reap(max_age: float | None = None) -> int:
    """Remove leaked sandboxes; returns how many were removed."""
    return _reap_docker(max_age) + _reap_cgroups()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leaked(labels: dict[str, str], max_age: float | None) -> bool:
    from agenthub.sandbox.docker_sandbox import OWNER_LABEL
    host, _, pid = labels.get(OWNER_LABEL, "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
        return True
    created = labels.get("agenthub.created", "")
    return max_age is not None and created.isdigit() and time.time() - int(created) > max_age


def _reap_docker(max_age: float | None) -> int:
    try:
        from agenthub.sandbox.docker_sandbox import LABEL
        from agenthub.sandbox.images import docker_client
        client = docker_client()
    except Exception:  # no SDK or no daemon: nothing of ours can be running there
        return 0
    removed = 0
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        if _leaked(container.labels, max_age):
            container.remove(force=True)
            removed += 1
    for volume in client.volumes.list(filters={"label": LABEL}):
        if _leaked(volume.attrs.get("Labels") or {}, max_age):
            try:
                volume.remove(force=True)
            except Exception:  # still in use by a container being removed: the next reap gets it
                pass
    return removed


def _reap_cgroups() -> int:
    removed = 0
    for parent in cgroups.parent_dirs():
        if not parent.is_dir():
            continue
        for d in parent.iterdir():
            pid = d.name.split("-", 1)[0]
            if d.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
                cgroups.Cgroup([Path(d)]).remove()
                removed += 1
    return removed
