"""A long-lived command in a sandbox, talked to through its stdin and stdout.

An MCP server over stdio lives for the whole episode and is spoken to line by line, which
`Sandbox.exec` (run to completion, no stdin) does not offer. `ServerProcess` starts the
command the way the bwrap backend starts an exec: the same bubblewrap wrapping (no
network, read-only system, private work dir), the same cgroup (or, where none can be
made, `subreaper.py`) so that `close` kills every process the server started. `local`
(plain host processes, no isolation) is used only when asked for by name; docker is not
offered, as its execs cannot keep a pipe open.

Host paths the server needs (its Python packages, say) are bound read-only at the same
path: `read_only`. Files given in `files` are written into the work dir first.
"""

from __future__ import annotations

import os
import queue
import select
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Mapping, Sequence

from agenthub import sandbox
from agenthub.sandbox.base import Limits, SandboxError
from agenthub.sandbox.bwrap import BwrapSandbox
from agenthub.sandbox.cgroups import Cgroup
from agenthub.sandbox.host import BASE_ENV, HostSandbox
from agenthub.sandbox.process import kill_tree, spawn_limited
from agenthub.sandbox.local import LocalSandbox

BACKENDS = ("bwrap", "local")
MAX_LINE_BYTES = 4 * 1024 * 1024  # one message from the server; longer ones are dropped
STDERR_TAIL = 2000  # characters of the server's stderr kept, to explain a crash
EXIT_GRACE = 1.0  # seconds a server gets to exit by itself once its stdin is closed
OVERSIZED = b"\x00oversized"  # put on the line queue in place of a dropped message
QUEUED_LINES = 16  # lines read ahead of the client: a server that floods its stdout waits, not our memory


class _BoundBwrapSandbox(BwrapSandbox):
    """The bwrap sandbox with some host paths bound read-only at the same place."""

    def __init__(self, limits: Limits, read_only: Sequence[str]):
        self.read_only = [str(Path(p).resolve()) for p in read_only]
        for path in self.read_only:
            if not Path(path).exists():
                raise SandboxError(f"cannot bind {path} into the sandbox: no such file or directory")
        super().__init__(limits)

    def _argv(self, argv: list[str], cwd: str, env: dict[str, str]) -> tuple[list[str], str, dict[str, str]]:
        args, host_cwd, host_env = super()._argv(argv, cwd, env)
        # after the sandbox's own /tmp, which would otherwise hide a bound venv under /tmp
        at = args.index("--tmpfs") + 2
        binds = [arg for path in self.read_only for arg in ("--ro-bind", path, path)]
        return [*args[:at], *binds, *args[at:]], host_cwd, host_env


class ServerProcess:
    """`argv` running in a sandbox until `close`; lines in with `send`, out with `lines`.

    Raises SandboxError when the backend cannot start here (saying how to get one) or the
    command cannot be started.
    """

    def __init__(self, argv: Sequence[str], backend: str = "bwrap", files: Mapping[str, str | bytes] | None = None,
                 read_only: Sequence[str] = (), env: Mapping[str, str] | None = None, memory: str = "1g",
                 pids: int = 128):
        if backend not in BACKENDS:
            raise SandboxError(f"an MCP server runs on the bwrap backend (or `local`, asked for by name, with no "
                               f"isolation), not {backend!r}")
        sandbox.check(backend)
        limits = Limits.of(memory, 1, pids, network=False, disk="256m")
        self.box: HostSandbox = _BoundBwrapSandbox(limits, read_only) if backend == "bwrap" else LocalSandbox(limits)
        self.lines: queue.Queue[bytes | None] = queue.Queue(QUEUED_LINES)  # None: the server closed its stdout
        self._reader: threading.Thread | None = None
        self._stderr: deque[str] = deque(maxlen=64)
        self.cgroup: Cgroup | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            for name, data in (files or {}).items():
                self.box.write_file(name, data)
            self._start(list(argv), {**BASE_ENV, "HOME": self.box.workdir, **(env or {})})
        except BaseException:
            self.close()
            raise

    def _start(self, argv: list[str], env: dict[str, str]) -> None:
        host_argv, host_cwd, host_env = self.box._argv(argv, self.box.workdir, env)
        try:
            self.proc, self.cgroup = spawn_limited(host_argv, host_cwd, host_env, self.box.limits,
                                                   self.box.owner, stdin=subprocess.PIPE)
        except OSError as e:
            raise SandboxError(f"cannot start the MCP server {argv[0]}: {e.strerror}") from None
        assert self.proc.stdin is not None
        os.set_blocking(self.proc.stdin.fileno(), False)  # `send` waits with a deadline, never forever
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        try:
            while line := stdout.readline(MAX_LINE_BYTES):
                if not line.endswith(b"\n") and len(line) >= MAX_LINE_BYTES:
                    while (rest := stdout.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                        pass  # drop the rest of the oversized message
                    line = OVERSIZED
                self.lines.put(line)
        except (OSError, ValueError):  # the pipe was closed by `close`
            pass
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        stderr = self.proc.stderr
        try:
            while chunk := stderr.readline(STDERR_TAIL):
                self._stderr.append(chunk.decode(errors="replace"))
        except (OSError, ValueError):
            pass

    def send(self, data: bytes, timeout: float) -> None:
        """Write `data` to the server's stdin within `timeout` seconds; SandboxError if the
        server is gone or has stopped reading (then part of `data` may have been written)."""
        if self.proc is None or self.proc.stdin is None or self.proc.stdin.closed:
            raise SandboxError("the MCP server is not running")
        fd, rest, deadline = self.proc.stdin.fileno(), memoryview(data), time.monotonic() + timeout
        while rest:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([], [fd], [], remaining)[1]:
                raise SandboxError(f"the MCP server stopped reading its input for {timeout:g} s")
            try:
                rest = rest[os.write(fd, rest):]
            except BlockingIOError:
                continue
            except OSError:
                raise SandboxError(f"the MCP server is not running ({self.exit_note()})") from None

    def alive(self) -> bool:
        """Whether the server process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def exit_note(self) -> str:
        """How the server ended, with the end of its stderr: for error messages."""
        code = None if self.proc is None else self.proc.poll()
        note = "still running" if code is None else f"exit code {128 - code if code < 0 else code}"
        tail = "".join(self._stderr).strip()[-STDERR_TAIL:]
        return note + (f"; its stderr ends: {tail}" if tail else "")

    def close(self) -> None:
        """Stop the server and everything it started, and delete its work dir. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()  # a well-behaved stdio server exits on end of input
                except OSError:
                    pass
            try:
                proc.wait(timeout=EXIT_GRACE)
            except subprocess.TimeoutExpired:
                if self.cgroup is None:  # the subreaper kills and reaps the tree on SIGTERM
                    proc.terminate()
                    try:
                        proc.wait(timeout=EXIT_GRACE)
                    except subprocess.TimeoutExpired:
                        pass
            kill_tree(proc.pid, self.cgroup)
            self.cgroup = None
            proc.wait()
            deadline = time.monotonic() + EXIT_GRACE
            while self._reader is not None and self._reader.is_alive() and time.monotonic() < deadline:
                try:  # empty the queue so that the reader can reach the end of the pipe
                    while True:
                        self.lines.get_nowait()
                except queue.Empty:
                    self._reader.join(0.05)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        self.box.close()

    def __del__(self) -> None:  # a forgotten server must not outlive its env
        try:
            self.close()
        except Exception:
            pass
