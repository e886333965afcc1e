"""Control groups for host-process sandboxes (bwrap, local).

rlimits alone cannot hold a sandbox run by root: RLIMIT_NPROC is not enforced for root,
and RLIMIT_AS is per process. A cgroup caps the whole process tree (pids, memory, CPU)
and lists every process in it, so `close` can kill them all. Creating one needs write
access to the cgroup filesystem (root, or a delegated subtree); without it `Cgroup.create`
returns None and the caller falls back to rlimits.

Both layouts are handled: cgroup v2 (one unified tree) and v1 (one tree per controller).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PARENT = "agenthub"
V1_CONTROLLERS = ("pids", "memory", "cpu")


class Cgroup:
    def __init__(self, dirs: list[Path]):
        self.dirs = dirs  # one per v1 controller, or the single v2 dir

    @classmethod
    def create(cls, memory: int, cpus: float, pids: int) -> Cgroup | None:
        name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            if (ROOT / "cgroup.controllers").exists():
                return cls._create_v2(name, memory, cpus, pids)
            return cls._create_v1(name, memory, cpus, pids)
        except OSError:
            return None

    @classmethod
    def _create_v2(cls, name: str, memory: int, cpus: float, pids: int) -> Cgroup:
        parent = ROOT / PARENT
        parent.mkdir(exist_ok=True)
        (ROOT / "cgroup.subtree_control").write_text("+memory +pids +cpu")
        (parent / "cgroup.subtree_control").write_text("+memory +pids +cpu")
        d = parent / name
        d.mkdir()
        group = cls([d])
        try:
            (d / "pids.max").write_text(str(pids))
            (d / "memory.max").write_text(str(memory))
            (d / "memory.swap.max").write_text("0")
            (d / "cpu.max").write_text(f"{int(cpus * 100_000)} 100000")
        except OSError:
            group.remove()
            raise
        return group

    @classmethod
    def _create_v1(cls, name: str, memory: int, cpus: float, pids: int) -> Cgroup:
        if not all((ROOT / c).is_dir() for c in V1_CONTROLLERS):
            raise OSError("cgroup v1 controllers pids/memory/cpu are not all mounted")
        group = cls([])
        try:
            for c in V1_CONTROLLERS:
                d = ROOT / c / own_v1_path(c) / PARENT / name
                d.mkdir(parents=True)
                group.dirs.append(d)
            pid_dir, mem_dir, cpu_dir = group.dirs
            (pid_dir / "pids.max").write_text(str(pids))
            (mem_dir / "memory.limit_in_bytes").write_text(str(memory))
            if (mem_dir / "memory.memsw.limit_in_bytes").exists():  # no swapping past the cap
                (mem_dir / "memory.memsw.limit_in_bytes").write_text(str(memory))
            (cpu_dir / "cpu.cfs_period_us").write_text("100000")
            (cpu_dir / "cpu.cfs_quota_us").write_text(str(int(cpus * 100_000)))
        except OSError:
            group.remove()
            raise
        return group

    def enter(self) -> None:
        """Move the calling process into the group (call it in the child, before exec)."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text("0")

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            try:
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return found

    def kill_all(self) -> None:
        """SIGKILL every process in the group, retrying while a fork races the kill."""
        for _ in range(200):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.005)

    def remove(self) -> None:
        self.kill_all()
        for d in self.dirs:
            for _ in range(200):  # rmdir fails until the killed processes are fully gone
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)


def parent_dirs() -> list[Path]:
    """The dirs that hold this host's sandbox cgroups (v2, then one per v1 controller)."""
    return [ROOT / PARENT] + [ROOT / c / own_v1_path(c) / PARENT for c in V1_CONTROLLERS]


def own_v1_path(controller: str) -> str:
    """This process's cgroup in a v1 hierarchy, relative to its root: sandboxes nest
    under it, so their usage still counts against whatever limits the caller is under."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path.lstrip("/")
    return ""
