"""The host's side of a sandbox's exec server (`exec_server.py`): start it, send it
commands, time them out, and end it.

The server is started once per sandbox through `spawn_limited`, so the whole sandbox (the
server, its keepers, every command and what they leave behind) is one cgroup, or runs
under `subreaper.py` where no cgroup can be made. A command's output goes straight to
pipes the host made for it (passed to the server by SCM_RIGHTS), never through the server.

Containment does not depend on the server behaving: a command that does not report back
within `REAP_GRACE` of being killed, or that breaks the server (kills or stops it), ends
the whole server tree from the host, which nothing inside survives; the next command
starts a fresh server (the work dir, on the host, is kept).
"""

from __future__ import annotations

import array
import os
import select
import socket
import subprocess
import tempfile
import threading
import time
from typing import Callable

from agenthub.sandbox.base import MAX_OUTPUT, ExecResult, Limits, SandboxError, decode_output
from agenthub.sandbox.cgroups import Cgroup
from agenthub.sandbox.process import REAP_GRACE, end_tree, spawn_limited

START_TIMEOUT = 30.0  # seconds for a server to say it is ready (python3 starting on a loaded host)
OUTPUT_GRACE = 0.3  # seconds to wait for the output pipes once the command is over
SERVER_DIED = ("[agenthub: the sandbox's exec server ended during this command, so everything running in the "
               "sandbox was stopped; files in the work dir are kept and the next command starts a fresh server]")

ServerCommand = Callable[[int], tuple[list[str], str, dict[str, str]]]
"""Given the descriptor number of the server's control socket: the host argv, cwd and env
that start `exec_server.py` in the sandbox."""


class ExecServer:
    """One running exec server. `run` may be called from several threads at once.

    Raises SandboxError when the server cannot start (with its stderr)."""

    def __init__(self, command: ServerCommand, limits: Limits, user: tuple[int, int] | None):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.ctl = ours
        self.stderr = tempfile.TemporaryFile()  # the server's; only read to explain its end
        self.lock = threading.Lock()
        self.cgroup: Cgroup | None = None
        try:
            argv, cwd, env = command(theirs.fileno())
            try:
                self.proc, self.cgroup = spawn_limited(argv, cwd, env, limits, user, pass_fds=(theirs.fileno(),),
                                                       stdout=subprocess.DEVNULL, stderr=self.stderr)
            except OSError as e:
                raise SandboxError(f"cannot start the sandbox's exec server {argv[0]}: {e.strerror}") from None
        except BaseException:
            ours.close()
            self.stderr.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(START_TIMEOUT)
        try:
            ready = ours.recv(16)
        except OSError:
            ready = b""
        if ready != b"ready":
            try:
                self.proc.wait(timeout=REAP_GRACE)  # for its own exit status in the message
            except subprocess.TimeoutExpired:
                pass
            note = self.note()
            self.close()
            raise SandboxError(f"the sandbox's exec server did not start: {note}")
        ours.settimeout(None)

    def alive(self) -> bool:
        return self.proc.poll() is None and self.ctl.fileno() >= 0

    def note(self) -> str:
        """How the server ended, with the end of its stderr: for error messages."""
        code = self.proc.poll()
        try:
            tail = os.pread(self.stderr.fileno(), 2000, max(0, os.fstat(self.stderr.fileno()).st_size - 2000))
        except (OSError, ValueError):  # closed
            tail = b""
        tail = tail.decode(errors="replace").strip()
        return ("still running" if code is None else f"exit code {code}") + (f"; stderr: {tail}" if tail else "")

    def run(self, argv: list[str], cwd: str, env: dict[str, str], timeout: float) -> ExecResult:
        """Run `argv` in `cwd` (a path as the server sees it) with exactly `env`, killing it
        and all it started after `timeout` seconds. Returns within `timeout` + REAP_GRACE +
        OUTPUT_GRACE. A server that breaks meanwhile is ended (see the module doc): the result
        then says so in its stderr, with exit code 137."""
        start = time.monotonic()
        fields = [cwd, str(len(argv)), *argv, *(f"{k}={v}" for k, v in env.items())]
        if not argv or any("\0" in f for f in fields) or any("=" in k or not k for k in env):
            return ExecResult(127, "", "cannot start the command: it is empty, or an argument, the cwd or the env "
                                       "holds a NUL byte, or an env name is empty or holds '='", False, 0.0)
        request = b"\0".join(os.fsencode(f) for f in fields)
        reply, theirs = socket.socketpair()
        (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe()
        streams = {out_r: _Stream(), err_r: _Stream()}
        try:
            try:
                payload = len(request).to_bytes(4, "big") + request
                reply.setblocking(False)  # what fits in the socket's buffer goes before the command
                try:
                    sent = reply.send(payload)
                except BlockingIOError:
                    sent = 0
                with self.lock:
                    self.ctl.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                               array.array("i", [theirs.fileno(), out_w, err_w]))])
            finally:
                theirs.close()
                os.close(out_w)
                os.close(err_w)
            if sent < len(payload):  # (a quick command may be over already, its `reply` closed)
                reply.settimeout(START_TIMEOUT)  # the server reads it whole before it starts the command
                reply.sendall(payload[sent:])
            status = self._wait(reply, streams, start + timeout)
        except OSError:  # the server is gone
            status = None
        finally:
            reply.close()
        if status is None:
            self.close()
        duration = time.monotonic() - start
        _drain(streams, time.monotonic() + OUTPUT_GRACE)
        code, timed_out = status if status is not None else (137, False)
        out, err = streams[out_r].text(), streams[err_r].text()
        if status is None:
            err += ("\n" if err and not err.endswith("\n") else "") + f"{SERVER_DIED} ({self.note()})"
        return ExecResult(code, out, err, timed_out, duration)

    def _wait(self, reply: socket.socket, streams: dict[int, _Stream], deadline: float) -> tuple[int, bool] | None:
        """Read the command's output until the keeper reports: (exit status, timed out), or
        None if it broke (no answer within REAP_GRACE of the kill, or `reply` ended without one)."""
        data = b""
        killed_at = None
        while not data.endswith(b"\n"):
            now = time.monotonic()
            if killed_at is None and now >= deadline:
                killed_at = now
                try:
                    reply.send(b"k")
                except OSError:  # it has just ended and reported: read the report
                    pass
            limit = (deadline if killed_at is None else killed_at + REAP_GRACE) - now
            if killed_at is not None and limit <= 0:
                return None
            open_fds = [fd for fd, stream in streams.items() if not stream.done]
            ready = select.select([reply, *open_fds], [], [], max(0.0, limit))[0]
            for fd in ready:
                if fd is reply:
                    chunk = reply.recv(64)
                    if not chunk:
                        return None
                    data += chunk
                else:
                    streams[fd].read(fd)
        try:
            word, code, killed = data.decode().split()
            return (int(code), killed == "1") if word == "EXIT" else None
        except ValueError:
            return None

    def close(self) -> None:
        """End the server and everything in the sandbox; wait until it is gone. Idempotent
        (once reaped, its pid may be another process's)."""
        with self.lock:
            if self.ctl.fileno() < 0:
                return
            self.ctl.close()
        end_tree(self.proc, self.cgroup)
        self.cgroup = None



class _Stream:
    """One output pipe of a command: the first MAX_OUTPUT bytes kept, the rest counted."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.kept = self.dropped = 0
        self.done = False

    def read(self, fd: int) -> None:
        chunk = os.read(fd, 65536)
        if not chunk:
            self.done = True
            os.close(fd)
            return
        room = MAX_OUTPUT - self.kept
        self.chunks.append(chunk[:room])
        self.kept += min(room, len(chunk))
        self.dropped += max(0, len(chunk) - room)

    def text(self) -> str:
        return decode_output(b"".join(self.chunks), self.dropped)


def _drain(streams: dict[int, _Stream], deadline: float) -> None:
    """Read the pipes to their end, or until `deadline`: a process that escaped the kill may
    hold one open. Closes them all."""
    open_fds = [fd for fd, stream in streams.items() if not stream.done]
    while open_fds:
        ready = select.select(open_fds, [], [], max(0.0, deadline - time.monotonic()))[0]
        if not ready:
            break
        for fd in ready:
            streams[fd].read(fd)
        open_fds = [fd for fd in open_fds if not streams[fd].done]
    for fd in open_fds:
        os.close(fd)
