"""Run a command, then kill every process it left behind: the `local` backend's
containment where no cgroup can be made (a caller that is not root).

A process group is not enough: `setsid cmd &` leaves it, and its orphans are adopted by
init, out of reach. This script marks itself a child subreaper (prctl
PR_SET_CHILD_SUBREAPER), so every orphan of its subtree is re-parented to it instead,
however it detached; when the command exits, or on SIGTERM (the caller's timeout), it
SIGKILLs all its descendants, reaps them, and exits with the command's status. Only a
SIGKILL of this script itself (the caller's last resort) lets orphans go.

Run as a script, standard library only: `python3 -I -S subreaper.py [--user UID:GID] -- ARGV...`;
with `--user` the command runs as that user (no supplementary groups) while this script
keeps the caller's rights, so that it can always kill what the command started.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
KILLED_BY_TERM = 143  # 128 + SIGTERM: the caller timed the command out


class _Stop(Exception):
    pass


def _on_term(signum: int, frame: object) -> None:
    raise _Stop


def descendants(root: int, spare: frozenset[int] = frozenset()) -> set[int]:
    """Every process below `root`, from the parent links in /proc, except the processes
    `spare` and everything below them."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != b"Z":  # zombies are only waiting to be reaped
            children.setdefault(int(fields[1]), []).append(int(name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            if pid not in found and pid not in spare:
                found.add(pid)
                todo.append(pid)
    return found


def become_subreaper() -> None:
    """Mark this process a child subreaper: orphans of its subtree are re-parented to it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.stderr.write(f"subreaper: prctl failed: {os.strerror(ctypes.get_errno())}\n")


def has_children() -> bool:
    """Whether any child, live or zombie, is left. For a subreaper whose command has been
    reaped this says whether anything of its subtree is left: every live descendant has an
    unbroken chain of parents up to it, since orphans are re-parented to it."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def kill_descendants(spare: frozenset[int] = frozenset()) -> None:
    """SIGKILL every descendant, except the processes `spare` and their subtrees, until none
    is left (a fork may race a round); reaps every child that has ended."""
    if not spare and not has_children():  # the common case: no /proc scan
        return
    me = os.getpid()
    for _ in range(100):
        pids = descendants(me, spare)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap()
        time.sleep(0.005)
    _reap()


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: list[str]) -> int:
    user = None
    if argv[:1] == ["--user"]:
        uid, gid = argv[1].split(":")
        user, argv = (int(uid), int(gid)), argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    signal.signal(signal.SIGTERM, _on_term)
    become_subreaper()
    try:
        child = os.fork()
    except _Stop:
        return KILLED_BY_TERM
    if child == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            if user is not None:
                os.setgroups([])
                os.setgid(user[1])
                os.setuid(user[0])
            os.execvp(argv[0], argv)
        except OSError as e:
            sys.stderr.write(f"cannot start {argv[0]}: {e.strerror}\n")
        os._exit(127)
    code = KILLED_BY_TERM
    try:
        _, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not stop the cleanup
        kill_descendants()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
