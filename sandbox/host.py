"""What the bwrap and local backends share: a work dir on the host and a process runner.

Each `exec` is one host process tree, started in its own session and (when the host
lets us) its own cgroup; when the command ends or times out, the whole tree is killed,
so nothing an exec starts outlives it. Files persist in the work dir between execs.
"""

from __future__ import annotations

import io
import os
import resource
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from abc import abstractmethod
from pathlib import Path
from typing import IO, Mapping

from agenthub.sandbox.base import MAX_OUTPUT, Command, ExecResult, Limits, Sandbox, SandboxError, decode_output
from agenthub.sandbox.cgroups import Cgroup

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
        shutil.rmtree(self.host_dir, ignore_errors=True)

    def _chown(self, *paths: Path) -> None:
        if self.owner is not None:
            for p in paths:
                os.chown(p, *self.owner, follow_symlinks=False)

    # -- files: a sandbox path under workdir is a host path under host_workdir
    def host_path(self, path: str) -> Path:
        path = self.resolve(path)
        if path != self.workdir and not path.startswith(self.workdir + "/"):
            raise SandboxError(f"{path} is outside the work dir {self.workdir}; "
                               f"{self.backend} sandboxes share files only through it")
        return self.host_workdir / os.path.relpath(path, self.workdir)

    def _put_archive(self, dest_dir: str, archive: bytes) -> None:
        dest = self.host_path(dest_dir)
        created = [p for p in (dest, *dest.parents) if not p.exists()]
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
            self._chown(*created, *(dest / m.name for m in tar.getmembers()))

    def _get_archive(self, path: str) -> bytes:
        src = self.host_path(path)
        if not src.exists():
            raise SandboxError(f"{self.resolve(path)}: no such file or directory in the sandbox")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(src, arcname=src.name if src != self.host_workdir else os.path.basename(self.workdir))
        return buf.getvalue()


def run_limited(argv: list[str], cwd: str | Path, env: dict[str, str], limits: Limits,
                timeout: float, user: tuple[int, int] | None = None) -> ExecResult:
    """Run `argv` in a new session under `limits` (as `user`, a (uid, gid), if given);
    kill its whole tree when it ends or times out."""
    cgroup = Cgroup.create(limits.memory, limits.cpus, limits.pids)

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

    start = time.monotonic()
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, preexec_fn=in_child)
    except OSError as e:
        if cgroup is not None:
            cgroup.remove()
        return ExecResult(127, "", f"cannot start {argv[0]}: {e.strerror}", False, time.monotonic() - start)
    out, err = _Collector(proc.stdout), _Collector(proc.stderr)  # type: ignore[arg-type]
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _kill_tree(proc.pid, cgroup)
        proc.wait()
    duration = time.monotonic() - start
    out.join(), err.join()
    code = proc.returncode
    return ExecResult(128 - code if code < 0 else code, decode_output(out.data, out.dropped),
                      decode_output(err.data, err.dropped), timed_out, duration)


def become(user: tuple[int, int]) -> None:
    """Drop to (uid, gid) with no supplementary groups (in a child, before exec)."""
    os.setgroups([])
    os.setgid(user[1])
    os.setuid(user[0])


def _kill_tree(pid: int, cgroup: Cgroup | None) -> None:
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

    def join(self) -> None:
        # A process that escaped the kill (setsid without a cgroup) may hold the pipe: stop waiting.
        self.thread.join(timeout=2)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)
