"""What the bwrap and local backends share: a work dir on the host and an exec server.

A sandbox's commands run through one long-lived exec server (`exec_server.py`, driven by
`exec_client.py`), started at the first `exec` in the sandbox's limits: its own cgroup
(when the host lets us), its namespaces (bwrap), its user. Each command runs under a
keeper that kills everything it started when it ends or times out, so nothing an exec
starts outlives it; a server that breaks is ended from the host, with all it holds, and
the next exec starts a fresh one. Paying for bubblewrap and a cgroup once per sandbox
rather than once per exec is what makes an exec cost about a plain fork+exec. Without a
cgroup (a caller that is not root) the server runs under `subreaper.py`; for `local` this
is a best effort: a process can still escape a SIGKILL of the subreaper itself.

Files persist in the work dir between execs, and so does /tmp (bwrap: one tmpfs per
sandbox). The host reads and writes the work dir only through `safefs` (one component at
a time, never following a link out of the work dir), since the sandboxed processes
control what is there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from abc import abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

from agenthub.sandbox import safefs
from agenthub.sandbox.base import Command, ExecResult, Limits, Sandbox, SandboxError, SandboxPathError
from agenthub.sandbox.exec_client import ExecServer

EXEC_SERVER = str(Path(__file__).with_name("exec_server.py"))
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
        self._server: ExecServer | None = None
        self._server_lock = threading.Lock()

    @abstractmethod
    def _argv(self, argv: list[str], cwd: str, env: dict[str, str]) -> tuple[list[str], str, dict[str, str]]:
        """The host argv, host cwd and host env that start `argv` in the sandbox, in `cwd`
        (a sandbox path), with `env`: how a long-lived process (the exec server, an MCP
        server) is wrapped."""

    @abstractmethod
    def _command_view(self, cwd: str, env: dict[str, str]) -> tuple[str, dict[str, str]]:
        """The cwd and env, as the exec server sees them, of a command run in `cwd` (a
        sandbox path) with `env`."""

    @abstractmethod
    def _server_command(self, fd: int) -> tuple[list[str], str, dict[str, str]]:
        """The host argv, cwd and env that start `exec_server.py` in the sandbox on the
        control socket `fd` (see `exec_client.ServerCommand`)."""

    def exec(self, cmd: Command, timeout: float = 60, cwd: str | None = None,
             env: Mapping[str, str] | None = None) -> ExecResult:
        """Run `cmd` through the sandbox's exec server (started at the first call; SandboxError
        if it cannot start, saying why)."""
        self._check_open()
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        inner_env = {**BASE_ENV, "HOME": self.workdir, **(env or {})}
        run_cwd, run_env = self._command_view(self.resolve(cwd or self.workdir), inner_env)
        return self._exec_server().run(argv, run_cwd, run_env, timeout)

    def warm(self) -> HostSandbox:
        self._exec_server()
        return self

    def _exec_server(self) -> ExecServer:
        with self._server_lock:
            self._check_open()
            if self._server is None or not self._server.alive():
                if self._server is not None:
                    self._server.close()
                self._server = None
                self._server = ExecServer(self._server_command, self.limits, self.owner)
            return self._server

    def is_alive(self) -> bool:
        return not self.closed and self.host_workdir.is_dir()

    def _close(self) -> None:
        with self._server_lock:
            if self._server is not None:
                self._server.close()
                self._server = None
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
