"""What the bwrap and local backends share: a work dir on the host and a process runner.

Each `exec` is one host process tree, started in its own session and, when the host lets
us, its own cgroup; when the command ends or times out, the whole tree is killed, so
nothing an exec starts outlives it. Without a cgroup (a caller that is not root) the
command runs under `subreaper.py`, which adopts and kills whatever detached itself
(`setsid cmd &`) and waits until it is gone. bwrap's PID namespace alone is not enough:
its processes die asynchronously after bwrap exits. For `local` this is a best effort: a
process can still escape a SIGKILL of the subreaper itself (the fallback after 0.5 s).

Files persist in the work dir between execs. The host reads and writes them only through
`safefs` (one component at a time, never following a link out of the work dir), since
the sandboxed processes control what is there.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from abc import abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Mapping

from agenthub.sandbox import safefs
from agenthub.sandbox.base import (MAX_OUTPUT, Command, ExecResult, Limits, Sandbox, SandboxError,
                                    SandboxPathError, decode_output)
from agenthub.sandbox.cgroups import Cgroup

SUBREAPER = str(Path(__file__).with_name("subreaper.py"))
REAP_GRACE = 0.5  # seconds the subreaper gets to kill a timed-out tree before SIGKILL
OUTPUT_GRACE = 0.3  # seconds to wait for the output pipes once the tree is dead
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


class HostSandbox(Sandbox):
    """A sandbox whose work dir is a host directory (`host_workdir`) and whose execs
    are host processes; subclasses say how a command is wrapped (`_argv`)."""

    owner: tuple[int, int] | None = None
    """(uid, gid) that must own the work dir's files so the sandboxed user can change them."""

    def __init__(self, limits: Limits, workdir: str):
        super().__init__(limits, workdir)
        # /dev/shm is a tmpfs: the work dir lives in memory, like a container's tmpfs.
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.host_dir = Path(tempfile.mkdtemp(prefix=f"agenthub-{self.backend}-", dir=base))
        self.host_dir.chmod(0o711)  # the sandboxed user must reach work/ to bind it
        self.host_workdir = self.host_dir / "work"
        self.host_workdir.mkdir()
        self._chown(self.host_workdir)

    @abstractmethod
    def _argv(self, argv: list[str], cwd: str, env: dict[str, str]) -> tuple[list[str], str, dict[str, str]]:
        """The host argv, host cwd and host env that run `argv` in `cwd` (a sandbox path) with `env`."""

    def exec(self, cmd: Command, timeout: float = 60, cwd: str | None = None,
             env: Mapping[str, str] | None = None) -> ExecResult:
        self._check_open()
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        inner_env = {**BASE_ENV, "HOME": self.workdir, **(env or {})}
        host_argv, host_cwd, host_env = self._argv(argv, self.resolve(cwd or self.workdir), inner_env)
        return run_limited(host_argv, host_cwd, host_env, self.limits, timeout, self.owner)

    def is_alive(self) -> bool:
        return not self.closed and self.host_workdir.is_dir()

    def _close(self) -> None:
        remove_tree(self.host_dir)

    def _chown(self, *paths: Path) -> None:
        if self.owner is not None:
            for p in paths:
                os.chown(p, *self.owner, follow_symlinks=False)

    # -- files: a sandbox path under workdir is a host path under host_workdir
    @contextmanager
    def _confined(self) -> Iterator[safefs.Tree]:
        """The work dir as a `safefs.Tree`; its refusals become SandboxPathError."""
        try:
            with safefs.Tree(str(self.host_workdir), self.workdir) as tree:
                yield tree
        except safefs.PathError as e:
            raise SandboxPathError(str(e)) from None
        except OSError as e:
            raise SandboxError(f"{self.backend} sandbox file operation failed: {e}") from None

    def host_path(self, path: str) -> Path:
        """The host path of the sandbox directory `path`, checked to be a directory reached
        without leaving the work dir (SandboxPathError otherwise)."""
        rel = self.relative(path)
        with self._confined() as tree:
            os.close(tree.open_dir(rel))
        return self.host_workdir / rel

    def _put_archive(self, dest_dir: str, archive: bytes) -> None:
        with self._confined() as tree:
            tree.extract(self.relative(dest_dir), archive, self.owner)

    def _get_archive(self, path: str) -> bytes:
        with self._confined() as tree:
            return tree.archive(self.relative(path), ".")

    def _read_bytes(self, rel: str) -> bytes:
        with self._confined() as tree:
            return tree.read(rel)


def remove_tree(path: Path) -> None:
    """Delete `path` and everything under it, also dirs the sandbox made unreadable
    (`chmod 000`); never follows a link (shutil.rmtree works by descriptor)."""
    def unlock(func: object, failed: str, excinfo: tuple) -> None:
        if issubclass(excinfo[0], PermissionError):  # let the second pass get in
            for p in (failed, os.path.dirname(failed)):
                if os.path.isdir(p) and not os.path.islink(p):
                    os.chmod(p, 0o700)

    shutil.rmtree(path, onerror=unlock)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


def spawn_limited(argv: list[str], cwd: str | Path, env: dict[str, str], limits: Limits,
                  user: tuple[int, int] | None = None, stdin: int = subprocess.DEVNULL
                  ) -> tuple[subprocess.Popen[bytes], Cgroup | None]:
    """Start `argv` in a new session under `limits` (as `user`, a (uid, gid), if given), with
    stdout and stderr piped. Returns the process and its cgroup (None when none could be
    made: the command then runs under `subreaper.py`, which kills and reaps its tree when
    it ends or is terminated). The caller ends the tree with `kill_tree`.

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
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, preexec_fn=in_child)
    except OSError:
        if cgroup is not None:
            cgroup.remove()
        raise
    return proc, cgroup


def run_limited(argv: list[str], cwd: str | Path, env: dict[str, str], limits: Limits,
                timeout: float, user: tuple[int, int] | None = None) -> ExecResult:
    """Run `argv` in a new session under `limits` (as `user`, a (uid, gid), if given);
    kill its whole tree when it ends or times out. Returns within `timeout` + 1 s.

    The tree is a cgroup where one can be made; otherwise the command runs under
    `subreaper.py`, which kills and reaps it."""
    start = time.monotonic()
    try:
        proc, cgroup = spawn_limited(argv, cwd, env, limits, user)
    except OSError as e:
        return ExecResult(127, "", f"cannot start {argv[0]}: {e.strerror}", False, time.monotonic() - start)
    subreaper = cgroup is None
    out, err = _Collector(proc.stdout), _Collector(proc.stderr)  # type: ignore[arg-type]
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        if subreaper:  # it kills and reaps the tree, then exits
            proc.terminate()
            try:
                proc.wait(timeout=REAP_GRACE)
            except subprocess.TimeoutExpired:
                pass
    finally:
        kill_tree(proc.pid, cgroup)
        proc.wait()
    duration = time.monotonic() - start
    deadline = time.monotonic() + OUTPUT_GRACE
    out.join(deadline), err.join(deadline)
    code = proc.returncode
    return ExecResult(128 - code if code < 0 else code, decode_output(out.data, out.dropped),
                      decode_output(err.data, err.dropped), timed_out, duration)


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


class _Collector:
    """Reads a pipe on a thread, keeping the first MAX_OUTPUT bytes and counting the rest."""

    def __init__(self, pipe: IO[bytes]):
        self.pipe, self.chunks, self.kept, self.dropped = pipe, [], 0, 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while chunk := self.pipe.read1(65536):  # type: ignore[attr-defined]
            room = MAX_OUTPUT - self.kept
            self.chunks.append(chunk[:room])
            self.kept += min(room, len(chunk))
            self.dropped += max(0, len(chunk) - room)

    def join(self, deadline: float) -> None:
        # A process that escaped the kill may hold the pipe open: stop waiting at `deadline`.
        self.thread.join(timeout=max(0.0, deadline - time.monotonic()))

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)
