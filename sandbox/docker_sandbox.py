"""The `docker` backend: one long-lived, locked-down container per sandbox.

The container runs `sleep infinity` (under docker's init, which reaps zombies) and each
`exec` is a `docker exec` into it, so processes and files persist between execs.
Hardening: no network, read-only root, all capabilities dropped, no-new-privileges,
non-root user (uid 1000), memory (no swap) / CPU / pids limits, and the work dir on a
size-capped tmpfs volume (its pages also count against the memory limit). Containers
and volumes carry `agenthub.*` labels naming their owner, so `sandbox.reap()` can remove
the ones a crashed process left behind.

Nothing an exec starts outlives it: the command runs under `timeout`, and afterwards
every process that was orphaned to the container's init (`setsid cmd &`, daemons) is
killed; only the container's main command and its children persist. File operations
run inside the container through `safefs` (by descriptor, never following a link out of
the work dir), so links the sandbox planted cannot steer them, e.g. into a host mount.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Mapping

from agenthub.sandbox import safefs
from agenthub.sandbox.base import (MAX_OUTPUT, Command, ExecResult, Limits, Sandbox, SandboxError,
                                    SandboxPathError, decode_output)
from agenthub.sandbox.images import docker_client, ensure_base_image

SANDBOX_USER = (1000, 1000)
LABEL = "agenthub.sandbox"
OWNER_LABEL = "agenthub.owner"  # "HOSTNAME:PID" of the process that started it
GRACE = 0.9  # seconds past an exec's timeout before the host stops waiting for its output
FILE_TIMEOUT = 120.0  # seconds for one file operation
SAFEFS_SOURCE = Path(safefs.__file__).read_text()
# Runs every exec: the command under `timeout`, then a SIGKILL for every live process
# whose parent chain ends at init (pid 1) other than through the container's main
# command (init's oldest child): what this exec or an earlier one left running. Chains
# that end at 0 belong to execs still running, and are left alone. Shell builtins only
# (`read`, `kill`), so it works in any image with sh and coreutils' timeout.
EXEC_WRAPPER = r"""
t=$1; shift
timeout --kill-after=0.5 "$t" "$@"
rc=$?
me=$$ main=
for d in /proc/[0-9]*; do
  { read -r s < "$d/stat"; } 2>/dev/null || continue
  set -- ${s##*)}
  p=${d#/proc/}
  if [ "$2" = 1 ] && { [ -z "$main" ] || [ "$p" -lt "$main" ]; }; then main=$p; fi
done
round=0
while [ $round -lt 20 ]; do
  round=$((round + 1)) found=
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    case $p in 1|$me|$main) continue;; esac
    { read -r s < "$d/stat"; } 2>/dev/null || continue
    set -- ${s##*)}
    [ "$1" = Z ] && continue
    q=$2
    while :; do
      case $q in
        0|$me|$main) break;;
        1) kill -9 "$p" 2>/dev/null && found=1; break;;
      esac
      { read -r s < "/proc/$q/stat"; } 2>/dev/null || break
      set -- ${s##*)}
      q=$2
    done
  done
  [ -z "$found" ] && break
done
exit $rc
"""


def owner_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class DockerSandbox(Sandbox):
    backend = "docker"
    file_owner = SANDBOX_USER

    def __init__(self, limits: Limits, workdir: str = "/workspace", image: str | None = None,
                 command: list[str] | None = None, mounts: Mapping[str, str] | None = None,
                 labels: Mapping[str, str] | None = None, environment: Mapping[str, str] | None = None):
        """`command`: the container's main process (default: sleep forever);
        `mounts`: host dir -> container dir, bound read-write (e.g. for a unix socket);
        `environment`: variables for the main process (e.g. a server's token)."""
        super().__init__(limits, workdir)
        self.client = docker_client()
        self.image = image or ensure_base_image(self.client)
        name = f"agenthub-{uuid.uuid4().hex[:12]}"
        all_labels = {LABEL: "1", OWNER_LABEL: owner_label(), "agenthub.created": f"{time.time():.0f}",
                      **(labels or {})}
        tmpfs_opts = f"uid={SANDBOX_USER[0]},gid={SANDBOX_USER[1]},mode=0755"
        if limits.disk is not None:
            tmpfs_opts += f",size={limits.disk}"
        self.volume = self.client.volumes.create(name, driver="local", labels=all_labels, driver_opts={
            "type": "tmpfs", "device": "tmpfs", "o": tmpfs_opts})
        volumes = {name: {"bind": self.workdir, "mode": "rw"}}
        volumes.update({host: {"bind": inside, "mode": "rw"} for host, inside in (mounts or {}).items()})
        try:
            self.container = self.client.containers.run(
                self.image, command or ["sleep", "infinity"], name=name, detach=True, init=True,
                labels=all_labels, user=f"{SANDBOX_USER[0]}:{SANDBOX_USER[1]}", working_dir=self.workdir,
                environment=dict(environment or {}),
                network_mode="bridge" if limits.network else "none",
                mem_limit=limits.memory, memswap_limit=limits.memory, nano_cpus=int(limits.cpus * 1e9),
                pids_limit=limits.pids, read_only=True, tmpfs={"/tmp": "size=64m,mode=1777"},
                cap_drop=["ALL"], security_opt=["no-new-privileges"], volumes=volumes)
        except Exception as e:
            self.volume.remove(force=True)
            self.client.close()
            raise SandboxError(f"cannot start a container from {self.image}: {e}") from e

    def exec(self, cmd: Command, timeout: float = 60, cwd: str | None = None,
             env: Mapping[str, str] | None = None) -> ExecResult:
        self._check_open()
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        # The wrapper stops the command's process group at `timeout` (SIGTERM, SIGKILL half
        # a second later), then its orphans; the host only stops listening if that fails.
        argv = ["sh", "-c", EXEC_WRAPPER, "sh", f"{timeout:.3f}", *argv]
        start = time.monotonic()
        exec_id, sock = self._start_exec(argv, self.resolve(cwd or self.workdir), env)
        out, err = _Streams(), _Streams()
        reader = threading.Thread(target=_read_frames, args=(sock, {1: out, 2: err}), daemon=True)
        reader.start()
        reader.join(timeout + GRACE)
        _close_socket(sock)  # also stops a reader still blocked on it
        duration = time.monotonic() - start
        if reader.is_alive():
            return ExecResult(137, out.text(), err.text(), True, duration)
        code = self.client.api.exec_inspect(exec_id)["ExitCode"]
        code = 137 if code is None else int(code)
        timed_out = code in (124, 137) and duration >= timeout
        return ExecResult(code, out.text(), err.text(), timed_out, duration)

    def _start_exec(self, argv: list[str], workdir: str, env: Mapping[str, str] | None = None,
                    stdin: bool = False) -> tuple[str, object]:
        """Start `argv` in the container; (exec id, its attached socket: the caller closes it)."""
        api = self.client.api
        try:
            exec_id = api.exec_create(self.container.id, argv, workdir=workdir, environment=dict(env or {}),
                                      stdin=stdin)["Id"]
            return exec_id, api.exec_start(exec_id, socket=True)
        except Exception as e:
            raise SandboxError(f"docker exec failed (is the container still running?): {e}") from e

    def is_alive(self) -> bool:
        if self.closed:
            return False
        try:
            self.container.reload()
        except Exception:
            return False
        return self.container.status == "running"

    def _close(self) -> None:
        import docker.errors
        try:
            for remove in (lambda: self.container.remove(force=True), lambda: self.volume.remove(force=True)):
                try:
                    remove()
                except docker.errors.NotFound:
                    pass
        finally:
            self.client.close()  # its pooled connections, else held until garbage collection

    def _put_archive(self, dest_dir: str, archive: bytes) -> None:
        self._safefs("put", self.relative(dest_dir), archive)

    def _get_archive(self, path: str) -> bytes:
        return self._safefs("get", self.relative(path))

    def _read_bytes(self, rel: str) -> bytes:
        return self._safefs("read", rel)

    def _safefs(self, op: str, rel: str, data: bytes = b"") -> bytes:
        """Run `safefs.py OP WORKDIR REL` in the container as the sandbox user, `data` on
        its stdin; its stdout. Docker's own archive API is not used: it follows links."""
        self._check_open()
        argv = ["python3", "-c", SAFEFS_SOURCE, op, self.workdir, rel]
        exec_id, sock = self._start_exec(argv, "/", stdin=True)
        out, err = _Streams(limit=None), _Streams()
        try:
            raw = getattr(sock, "_sock", sock)
            raw.settimeout(FILE_TIMEOUT)
            if data:
                raw.sendall(data)
            raw.shutdown(socket.SHUT_WR)
            _read_frames(sock, {1: out, 2: err})
        except OSError as e:
            raise SandboxError(f"file operation {op} on {self.workdir}/{rel} failed: {e}") from e
        finally:
            _close_socket(sock)
        code = self.client.api.exec_inspect(exec_id)["ExitCode"]
        message = err.text().strip()
        if code == safefs.EXIT_PATH_ERROR:
            raise SandboxPathError(message)
        if code != 0:
            raise SandboxError(f"file operations in docker sandboxes need python3 in the image "
                               f"({self.image}): exit code {code}: {message or out.text()[-500:]}")
        return bytes(out.data)

    def logs(self) -> str:
        """The main process's output (useful when `command` is a server that died)."""
        try:
            return self.container.logs().decode(errors="replace")
        except Exception:
            return ""


class _Streams:
    """One output stream of an exec: the first `limit` bytes (None: all), and a count of the rest."""

    def __init__(self, limit: int | None = MAX_OUTPUT):
        self.data, self.limit, self.dropped = bytearray(), limit, 0

    def add(self, chunk: bytes) -> None:
        room = len(chunk) if self.limit is None else max(0, self.limit - len(self.data))
        self.data += chunk[:room]
        self.dropped += len(chunk) - min(room, len(chunk))

    def text(self) -> str:
        return decode_output(bytes(self.data), self.dropped)


def _read_frames(sock: object, streams: dict[int, _Streams]) -> None:
    """Demultiplex docker's attach stream (8-byte frame headers) until it ends or the
    socket is closed under us."""
    from docker.utils.socket import frames_iter
    try:
        for stream, chunk in frames_iter(sock, tty=False):
            if stream in streams:
                streams[stream].add(chunk)
    except (OSError, ValueError):  # closed by the caller after its deadline
        pass


def _close_socket(sock: object) -> None:
    """Really close an attach socket: the SDK's wrapper keeps the descriptor open until
    garbage collection, one fd per exec otherwise."""
    raw = getattr(sock, "_sock", None)
    try:
        sock.close()  # type: ignore[attr-defined]
    except OSError:
        pass
    if raw is not None and raw.fileno() >= 0:
        try:
            raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        os.close(raw.detach())
