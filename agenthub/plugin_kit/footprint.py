"""What a process holds: child processes, open file descriptors, threads, and the
docker containers, volumes and cgroups its sandboxes own (`agenthub.sandbox.leaks`).

`agenthub check` compares the footprint before and after make/reset/step/close cycles;
anything an env leaves behind after `close` shows up as a difference.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

import psutil

from agenthub.sandbox.leaks import census

# `census` also looks for processes by a marker in their command line; the check counts
# this process's descendants instead, so it passes a marker no command line holds
_NO_MARKER = "\x00agenthub-check:no-marker\x00"


@dataclass(frozen=True)
class Footprint:
    children: frozenset[int]  # pids of live descendant processes (zombies excluded)
    fds: int
    threads: int
    sandbox_resources: frozenset[str]  # "container ID" / "volume NAME" / "cgroup PATH" owned by this process

    def left_since(self, before: Footprint) -> dict[str, int]:
        """What grew since `before`, by kind: processes, fds, threads, sandbox resources."""
        return {"processes": len(self.children - before.children), "fds": max(0, self.fds - before.fds),
                "threads": max(0, self.threads - before.threads),
                "sandbox resources": len(self.sandbox_resources - before.sandbox_resources)}


def footprint() -> Footprint:
    """The current process's footprint (after a garbage collection, so that objects
    only waiting to be freed do not count)."""
    gc.collect()
    me = psutil.Process()
    children = frozenset(p.pid for p in me.children(recursive=True) if _alive(p))
    held = census(_NO_MARKER)
    resources = frozenset([f"container {c}" for c in held.containers] + [f"volume {v}" for v in held.volumes]
                          + [f"cgroup {g}" for g in held.cgroups])
    return Footprint(children, me.num_fds(), me.num_threads(), resources)


def settled_footprint(before: Footprint, settle_s: float = 3.0) -> Footprint:
    """The footprint once it stops exceeding `before`, or after `settle_s` seconds:
    a process killed by `close` may take a moment to be reaped, a thread to finish."""
    deadline = time.monotonic() + settle_s
    while True:
        now = footprint()
        if not any(now.left_since(before).values()) or time.monotonic() >= deadline:
            return now
        time.sleep(0.1)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
