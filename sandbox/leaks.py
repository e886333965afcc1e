"""What sandboxes hold on this host, counted before and after many open/exec/close
cycles, to show that closing a sandbox gives everything back: processes, containers,
volumes, cgroups, work dirs and this process's file descriptors.

Used by the leak test (tests/test_sandbox_leaks.py) and `bench/sandbox.py --leaks`.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agenthub.sandbox import cgroups


@dataclass(frozen=True)
class Census:
    processes: frozenset[int]  # live host pids whose command line holds the marker
    containers: frozenset[str]  # docker containers this process owns
    volumes: frozenset[str]  # docker volumes this process owns
    cgroups: frozenset[str]  # cgroups named after this process
    work_dirs: frozenset[str]  # host work dirs (of the sandboxes looked at) that still exist
    fds: int  # file descriptors open in this process


def census(marker: str, work_dirs: list[Path] = ()) -> Census:  # type: ignore[assignment]
    """What is held now; `marker` picks the processes, `work_dirs` the dirs to look for."""
    containers, volumes = _docker_owned()
    gc.collect()  # a failed docker connection's socket waits in a reference cycle: garbage, not held
    return Census(frozenset(processes_with(marker)), containers, volumes, frozenset(_own_cgroups()),
                  frozenset(str(d) for d in work_dirs if d.exists()), len(os.listdir("/proc/self/fd")))


@dataclass
class LeakReport:
    backend: str
    cycles: int
    seconds: float
    before: Census
    after: Census
    execs_failed: int = 0
    work_dirs: list[Path] = field(default_factory=list, repr=False)

    def left_over(self) -> dict[str, Any]:
        """What the cycles left behind (empty: nothing)."""
        left: dict[str, Any] = {}
        for name in ("processes", "containers", "volumes", "cgroups", "work_dirs"):
            extra = getattr(self.after, name) - getattr(self.before, name)
            if extra:
                left[name] = sorted(extra)
        if self.after.fds > self.before.fds:
            left["fds"] = self.after.fds - self.before.fds
        return left

    def figures(self) -> dict[str, Any]:
        return {"backend": self.backend, "cycles": self.cycles, "seconds": round(self.seconds, 1),
                "ms_per_cycle": round(1000 * self.seconds / max(1, self.cycles), 1),
                "execs_failed": self.execs_failed, "left_over": self.left_over() or "nothing"}


def cycle(backend: str, cycles: int, marker: str, **options: Any) -> LeakReport:
    """Open a sandbox, run a command that leaves background processes (plain and
    detached, tagged with `marker`), write and read a file, close; `cycles` times, after
    one warm-up cycle (client connection pools, caches)."""
    from agenthub import sandbox

    dirs: list[Path] = []
    failed = 0

    def once() -> None:
        nonlocal failed
        with sandbox.open(backend, **options) as box:
            if hasattr(box, "host_dir"):
                dirs.append(box.host_dir)
            r = box.exec(f"sleep 30{marker} & setsid sleep 30{marker} >/dev/null 2>&1 </dev/null & echo ok",
                         timeout=10)
            box.write_file("a.txt", "x")
            failed += not (r.ok and r.stdout == "ok\n" and box.read_file("a.txt") == "x")

    once()
    before = census(marker, dirs)
    start = time.monotonic()
    for _ in range(cycles):
        once()
    seconds = time.monotonic() - start
    return LeakReport(backend, cycles, seconds, before, census(marker, dirs), failed, dirs)


def processes_with(marker: str) -> list[int]:
    """Host pids (this process aside) whose command line holds `marker`, sorted; the host
    sees every sandbox's processes."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if marker.encode() in (d / "cmdline").read_bytes():
                    found.append(int(d.name))
            except OSError:
                pass
    return sorted(found)


def _docker_owned() -> tuple[frozenset[str], frozenset[str]]:
    try:
        from agenthub.sandbox.docker_sandbox import OWNER_LABEL, owner_label
        from agenthub.sandbox.images import docker_client
        client = docker_client()
    except Exception:  # no SDK or no daemon: no containers of ours
        return frozenset(), frozenset()
    label = {"label": f"{OWNER_LABEL}={owner_label()}"}
    try:
        return (frozenset(c.id for c in client.containers.list(all=True, filters=label)),
                frozenset(v.name for v in client.volumes.list(filters=label)))
    finally:
        client.close()  # else its connection counts as a leaked descriptor of the sandboxes


def _own_cgroups() -> set[str]:
    prefix = f"{os.getpid()}-"
    return {str(d) for parent in cgroups.parent_dirs() if parent.is_dir()
            for d in parent.iterdir() if d.is_dir() and d.name.startswith(prefix)}
