"""Starting and ending one limited host process tree (the bwrap and local backends' exec
servers, and MCP servers run in a sandbox).

`spawn_limited` starts a command in a new session, in its own cgroup when the host lets
us (root, or a delegated cgroup tree), else under `subreaper.py`, which adopts and kills
whatever detached itself (`setsid cmd &`) when the command ends or is terminated.
`end_tree` stops the tree either way and waits until it is gone.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Sequence

from agenthub.sandbox.base import Limits
from agenthub.sandbox.cgroups import Cgroup

SUBREAPER = str(Path(__file__).with_name("subreaper.py"))
REAP_GRACE = 0.5  # seconds the subreaper gets to kill a tree before SIGKILL


def spawn_limited(argv: list[str], cwd: str | Path, env: dict[str, str], limits: Limits,
                  user: tuple[int, int] | None = None, stdin: int = subprocess.DEVNULL,
                  pass_fds: Sequence[int] = (), stdout: int | IO[bytes] = subprocess.PIPE,
                  stderr: int | IO[bytes] = subprocess.PIPE) -> tuple[subprocess.Popen[bytes], Cgroup | None]:
    """Start `argv` in a new session under `limits` (as `user`, a (uid, gid), if given), with
    `stdin`, `stdout` and `stderr` as Popen takes them and the descriptors `pass_fds` inherited. Returns the process and
    its cgroup (None when none could be made: the command then runs under `subreaper.py`,
    which kills and reaps its tree when it ends or is terminated). The caller ends the tree
    with `end_tree` (or `kill_tree`).

    Raises OSError when the command cannot start (the cgroup is removed)."""
    cgroup = Cgroup.create(limits.memory, limits.cpus, limits.pids)
    if cgroup is None:  # it drops to `user` for the command itself, keeping the rights to kill it
        as_user = ["--user", f"{user[0]}:{user[1]}"] if user is not None else []
        argv, user = [sys.executable, "-I", "-S", SUBREAPER, *as_user, "--", *argv], None

    def in_child() -> None:  # runs between fork and exec
        if cgroup is not None:
            cgroup.enter()
        else:  # weaker: per-process memory, per-user process count
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory, limits.memory))
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.pids, limits.pids))
        if limits.disk is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.disk, limits.disk))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if user is not None:  # last: joining the cgroup needs the caller's rights
            become(user)

    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=stdin, stdout=stdout,
                                stderr=stderr, start_new_session=True, preexec_fn=in_child,
                                pass_fds=tuple(pass_fds))
    except OSError:
        if cgroup is not None:
            cgroup.remove()
        raise
    return proc, cgroup


def become(user: tuple[int, int]) -> None:
    """Drop to (uid, gid) with no supplementary groups (in a child, before exec)."""
    os.setgroups([])
    os.setgid(user[1])
    os.setuid(user[0])


def kill_tree(pid: int, cgroup: Cgroup | None) -> None:
    """SIGKILL the process group `pid` leads, then remove its cgroup (if any)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if cgroup is not None:
        cgroup.remove()


def end_tree(proc: subprocess.Popen[bytes], cgroup: Cgroup | None) -> None:
    """Kill the tree `spawn_limited` started and wait until it is gone: the cgroup's
    processes, or (without one) what the subreaper kills and reaps on SIGTERM."""
    if cgroup is None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=REAP_GRACE)
        except subprocess.TimeoutExpired:
            pass
    kill_tree(proc.pid, cgroup)
    proc.wait()
