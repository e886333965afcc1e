"""The Sandbox protocol: what every backend (docker, bwrap, local) offers.

A sandbox is a place to run untrusted commands with limits: a work directory that
persists between `exec` calls, a wall-clock timeout per call, memory/CPU/process caps
and (by default) no network. Backends differ in how strong the wall is, not in the API,
so environments written against `Sandbox` run unchanged on any of them.
"""

from __future__ import annotations

import io
import posixpath
import re
import tarfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from agenthub.errors import AgentHubError
from agenthub.sandbox import safefs

Command = str | Sequence[str]
"""A shell command line (run with `sh -c`) or an argv list (run as is)."""

MAX_OUTPUT = 8 * 1024 * 1024
"""Bytes kept per stream of one exec; the rest is dropped so a chatty command cannot eat the host's memory."""


class SandboxError(AgentHubError):
    """A sandbox could not be started or used (missing backend, dead sandbox, bad path)."""


class SandboxPathError(SandboxError):
    """A file operation on a sandbox path was refused: the path does not exist, is of the
    wrong kind, or leads out of the work dir (through a symbolic link, a hard link or `..`).
    Env tools answer it as `Error: <message>`."""


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    duration: float  # seconds, wall clock

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(size: int | str) -> int:
    """Bytes from an int or a Docker-style size ("512m", "1g", "1.5GiB")."""
    if isinstance(size, int):
        return size
    m = _SIZE.match(size)
    if not m:
        raise SandboxError(f"bad size {size!r}: expected bytes or a number with k/m/g/t, e.g. '1g'")
    return int(float(m.group(1)) * 1024 ** "bkmgt".index((m.group(2) or "b").lower()))


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandbox. `disk` caps the work dir where the backend can
    (docker: a sized tmpfs; bwrap/local: the largest file a process may write)."""

    memory: int = 1024 ** 3
    cpus: float = 1.0
    pids: int = 256
    network: bool = False
    disk: int | None = 1024 ** 3

    @classmethod
    def of(cls, memory: int | str = "1g", cpus: float = 1, pids: int = 256, network: bool = False,
           disk: int | str | None = "1g") -> Limits:
        return cls(parse_size(memory), float(cpus), int(pids), bool(network),
                   None if disk is None else parse_size(disk))


class Sandbox(ABC):
    """One isolated place to run commands. Use as a context manager; `close` is idempotent.

    Paths given to the file methods are paths inside the sandbox; relative ones are
    relative to `workdir`.
    """

    backend: str = ""
    file_owner: tuple[int, int] = (0, 0)
    """(uid, gid) written into the archives of `write_file` / `upload_dir`."""

    def __init__(self, limits: Limits, workdir: str):
        if not posixpath.isabs(workdir):
            raise SandboxError(f"workdir must be an absolute path, got {workdir!r}")
        self.limits = limits
        self.workdir = posixpath.normpath(workdir)
        self.closed = False

    # -- running commands
    @abstractmethod
    def exec(self, cmd: Command, timeout: float = 60, cwd: str | None = None,
             env: Mapping[str, str] | None = None) -> ExecResult:
        """Run `cmd` to completion or until `timeout` seconds have passed (then it is
        killed and `timed_out` is set). Never raises for a failing command."""

    @abstractmethod
    def is_alive(self) -> bool:
        ...

    def warm(self) -> Sandbox:
        """Get ready to run commands now, so that the first `exec` does not pay for it (bwrap,
        local: start the exec server; docker: nothing, `open` started the container). Returns
        the sandbox; SandboxError if it cannot start."""
        return self

    @abstractmethod
    def _close(self) -> None:
        ...

    def close(self) -> None:
        """Stop everything the sandbox started and delete its work dir. Safe to call twice."""
        if not self.closed:
            self.closed = True
            self._close()

    # -- files: every backend moves files as tar archives (what `docker cp` speaks)
    @abstractmethod
    def _put_archive(self, dest_dir: str, archive: bytes) -> None:
        """Unpack a tar archive into `dest_dir` (a sandbox path, created if missing)."""

    @abstractmethod
    def _get_archive(self, path: str) -> bytes:
        """A tar archive of the directory `path` (a sandbox path), its members named
        relative to it ("." is the directory itself); links inside are stored, not followed."""

    @abstractmethod
    def _read_bytes(self, rel: str) -> bytes:
        """The bytes of the regular file `rel` (relative to the work dir), reached without
        following any link out of the work dir (SandboxPathError otherwise)."""

    def write_file(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        """Create or overwrite a file (and its missing parent dirs). SandboxPathError if it
        is a directory or special file, has several hard links, or is reached through a
        link that leaves the work dir."""
        if not self.relative(path):
            raise SandboxPathError(f"{self.workdir} is a directory")
        path = self.resolve(path)
        payload = data.encode() if isinstance(data, str) else data
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(posixpath.basename(path))
            info.size, info.mode = len(payload), mode
            info.uid, info.gid = self.file_owner
            tar.addfile(info, io.BytesIO(payload))
        self._put_archive(posixpath.dirname(path), buf.getvalue())

    def read_file(self, path: str, binary: bool = False) -> str | bytes:
        """The file's contents. SandboxPathError if it is missing, not a regular file, has
        several hard links, or is reached through a link that leaves the work dir."""
        data = self._read_bytes(self.relative(path))
        return data if binary else data.decode(errors="replace")

    def upload_dir(self, src: str | Path, dest: str) -> None:
        """Copy the host directory `src` to the sandbox directory `dest` (its contents, not itself)."""
        src = Path(src)
        if not src.is_dir():
            raise SandboxError(f"upload_dir: {src} is not a directory")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(src, arcname=".", filter=self._owned)
        self._put_archive(self.resolve(dest), buf.getvalue())

    def download_dir(self, src: str, dest: str | Path) -> None:
        """Copy the sandbox directory `src` to the host directory `dest` (its contents, not
        itself). Nothing in it can make the copy write outside `dest`: symlinks must be
        relative and stay inside the copied tree, hard links become copies, special files
        are refused (SandboxPathError)."""
        archive = self._get_archive(self.resolve(src))
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        try:
            with safefs.Tree(str(dest), str(dest.resolve()), absolute_links=False) as tree:
                tree.extract("", archive)
        except safefs.PathError as e:
            raise SandboxPathError(f"download_dir: {e}") from None

    def _owned(self, info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid = self.file_owner
        info.uname = info.gname = ""
        return info

    def resolve(self, path: str) -> str:
        """The absolute, normalised sandbox path of `path`."""
        self._check_open()
        return posixpath.normpath(posixpath.join(self.workdir, path))

    def relative(self, path: str) -> str:
        """`path` relative to the work dir ("" for the work dir itself); SandboxPathError
        for a path outside it: sandboxes share files with the host only through it."""
        path = self.resolve(path)
        if path == self.workdir:
            return ""
        if self.workdir != "/" and not path.startswith(self.workdir + "/"):
            raise SandboxPathError(f"{path} is outside the work dir {self.workdir}; "
                                   f"sandboxes share files only through it")
        return posixpath.relpath(path, self.workdir)

    def _check_open(self) -> None:
        if self.closed:
            raise SandboxError(f"this {self.backend} sandbox is closed")

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten sandbox must not leak containers or processes
        try:
            self.close()
        except Exception:
            pass


def decode_output(data: bytes, dropped: int) -> str:
    text = data.decode(errors="replace")
    return text + (f"\n[... {dropped} more bytes dropped]" if dropped else "")
