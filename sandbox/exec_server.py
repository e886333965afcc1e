"""The exec server: one long-lived process per bwrap or local sandbox that runs its commands.

Starting bubblewrap costs milliseconds per call (namespaces, a dozen mounts, a fresh
/proc), and a cgroup per command costs more; so a sandbox starts them once, with this
script as its one process, and each `exec` is a request to it. The server is a child
subreaper (see `subreaper.py`): nothing a command starts can leave its subtree, however
it detaches. It spawns a command itself (posix_spawn) when no other runs, and when that
command ends or is killed it kills every process left below it but the keepers; a
command that arrives while another runs gets a *keeper*, a forked copy of the server,
also a subreaper, that does the same for that one command. The limits (cgroup, rlimits,
namespaces, user) are those of the sandbox, set once when it starts.

Protocol, on the SOCK_SEQPACKET control socket inherited as descriptor FD:
- server → host, once started: `ready`.
- host → server, per command: one message carrying three descriptors (SCM_RIGHTS): a
  stream socket for this command (`reply`), then its stdout and stderr.
- host → server on `reply`: a 4-byte big-endian length, then the request: NUL-separated
  fields cwd, len(argv), argv..., then the env as KEY=VALUE (none may hold a NUL, as in
  execve); later, any byte (or the end of `reply`): kill the command now.
- server (or keeper) → host on `reply`, once the command and all it started are gone:
  `EXIT <status> <killed 0|1>\\n`.
- end of the control socket (the sandbox closed, or its host process died): the server
  kills everything and exits.

The server and keepers are not dumpable, so a command (same user) cannot ptrace them; a
command that kills them breaks its sandbox's server, which the host then replaces.

Run as a script, standard library only (it runs on the sandbox's own python3):
`python3 -I -S exec_server.py FD`. It imports `_socket`, not `socket`: the latter's enum
and selectors imports would double the server's start.
"""

from __future__ import annotations

import _socket
import array
import ctypes
import errno
import os
import select
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the script's dir out
from subreaper import become_subreaper, kill_descendants  # noqa: E402

PR_SET_DUMPABLE = 4
FDS_PER_REQUEST = 3
MAX_REQUEST = 64 * 1024 * 1024  # bytes of one command's request (argv + env)
REQUEST_TIMEOUT = 30.0  # seconds for the host to send a command's request (it writes it at once)


def _not_dumpable() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def _read_exact(sock: _socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(size - len(data), 1 << 20))
        if not chunk:
            raise EOFError("the host closed the request")
        data += chunk
    return bytes(data)


def _read_request(reply: _socket.socket) -> tuple[list[bytes], bytes, dict[bytes, bytes]]:
    """(argv, cwd, env) of one command (see the protocol above); ValueError if malformed."""
    size = int.from_bytes(_read_exact(reply, 4), "big")
    if size > MAX_REQUEST:
        raise ValueError(f"request of {size} bytes")
    cwd, argc, *rest = _read_exact(reply, size).split(b"\0")
    argv, env = rest[:int(argc)], rest[int(argc):]
    if not argv or len(argv) != int(argc):
        raise ValueError("argv must not be empty")
    return argv, cwd, dict(item.split(b"=", 1) for item in env)


SIGNALS_TO_RESET = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGTERM, signal.SIGINT)


def _find(name: bytes, path: bytes) -> bytes:
    """`name` looked up on `path` (a PATH value) as a shell would; FileNotFoundError if absent."""
    if b"/" in name:
        return name
    for folder in path.split(b":"):
        candidate = os.path.join(folder or b".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)


def _spawn(argv: list[bytes], cwd: bytes, env: dict[bytes, bytes], out: int, err: int) -> int:
    """Start the command (posix_spawn: no Python runs in the child) in a new session, with
    stdin from /dev/null and the default signal dispositions Python changed; its pid."""
    os.chdir(cwd)  # this process's own cwd (the server's or a keeper's): the command inherits it
    return os.posix_spawn(_find(argv[0], env.get(b"PATH", os.defpath.encode())), argv, env, setsid=True,
                          setsigdef=SIGNALS_TO_RESET,
                          file_actions=[(os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, err, 2),
                                        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)])


class Command:
    """One running command: its pid, a pidfd that is readable once it exits, and `reply`."""

    def __init__(self, reply: _socket.socket, out: int, err: int):
        self.reply, self.pid = reply, None
        try:
            reply.settimeout(REQUEST_TIMEOUT)
            argv, cwd, env = _read_request(reply)
            reply.settimeout(None)
        except (OSError, EOFError, ValueError):
            reply.close()  # the host gave up on this command, or sent garbage: nothing was started
            os.close(out)
            os.close(err)
            return
        try:
            self.pid = _spawn(argv, cwd, env, out, err)
        except OSError as e:
            what = b"cannot change to " + cwd if e.filename == cwd else b"cannot start " + argv[0]
            os.write(err, what + f": {e.strerror}\n".encode())
            self._send(127, False)
            return
        finally:
            os.close(out)
            os.close(err)
        self.pidfd = os.pidfd_open(self.pid)

    def finish(self, killed: bool, spare: frozenset[int]) -> None:
        """The command exited (or, if `killed`, is to be killed now): reap it, kill what it
        left below this process (except the subtrees of `spare`), and report."""
        if self.pid is None:
            return
        if killed:
            os.kill(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        os.close(self.pidfd)
        kill_descendants(spare)  # what detached itself (`setsid cmd &`) dies with its command
        code = os.waitstatus_to_exitcode(status)
        self._send(128 - code if code < 0 else code, killed)

    def _send(self, code: int, killed: bool) -> None:
        try:
            self.reply.sendall(f"EXIT {code} {int(killed)}\n".encode())
        except OSError:
            pass
        self.reply.close()


def keep(reply: _socket.socket, out: int, err: int) -> None:
    """A keeper (a forked copy of the server): run one command, kill it when the host says
    so, then kill what it left behind and report its exit status."""
    become_subreaper()
    command = Command(reply, out, err)
    if command.pid is not None:
        ready, _, _ = select.select([command.pidfd, reply], [], [])
        command.finish(command.pidfd not in ready, frozenset())


def _start_keeper(not_its: list[int], reply: _socket.socket, out: int, err: int) -> int | None:
    """Fork a keeper for a command; its pid (None, with `reply` closed, if no fork is possible).
    `not_its`: the server's descriptors, closed in the keeper (a keeper holding another
    command's `reply` would hide the server's end from that command's host)."""
    try:
        pid = os.fork()
    except OSError:  # out of pids: the end of `reply` tells the host the command could not run
        pid = None
    if pid == 0:
        for fd in not_its:
            os.close(fd)
        try:
            keep(reply, out, err)
        finally:
            os._exit(0)
    for fd in (reply.detach(), out, err):
        os.close(fd)
    return pid


def _received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return list(fds)


def serve(ctl: _socket.socket) -> None:
    """Run commands until the control socket ends: one at a time here, the others in keepers."""
    space = _socket.CMSG_SPACE(FDS_PER_REQUEST * array.array("i").itemsize)
    direct: Command | None = None
    keepers: dict[int, int] = {}  # pidfd -> pid
    while True:
        waiting = [ctl, *keepers] + ([direct.pidfd, direct.reply] if direct is not None else [])
        ready, _, _ = select.select(waiting, [], [])
        if direct is not None and (direct.pidfd in ready or direct.reply in ready):
            direct.finish(direct.pidfd not in ready, frozenset(keepers.values()))
            direct = None
        for pidfd in [fd for fd in keepers if fd in ready]:
            try:
                os.waitpid(keepers.pop(pidfd), 0)
            except ChildProcessError:  # already reaped with the leftovers of a command
                pass
            os.close(pidfd)
        if ctl not in ready:
            continue
        try:
            message, ancillary, _, _ = ctl.recvmsg(16, space, _socket.MSG_CMSG_CLOEXEC)
        except OSError:
            return
        fds = _received_fds(ancillary)
        if not message and not fds:
            return  # end of the control socket
        if len(fds) != FDS_PER_REQUEST:
            for fd in fds:
                os.close(fd)
            continue
        reply = _socket.socket(fileno=fds[0])
        if direct is None:
            command = Command(reply, fds[1], fds[2])
            direct = command if command.pid is not None else None
        elif (pid := _start_keeper([fd if isinstance(fd, int) else fd.fileno() for fd in waiting], reply,
                                   fds[1], fds[2])) is not None:
            keepers[os.pidfd_open(pid)] = pid


def main(argv: list[str]) -> int:
    fd = int(argv[0])
    os.set_inheritable(fd, False)  # commands must not reach the control socket
    ctl = _socket.socket(fileno=fd)
    become_subreaper()
    _not_dumpable()
    ctl.sendall(b"ready")
    try:
        serve(ctl)
    finally:
        kill_descendants()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
