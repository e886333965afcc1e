"""The `docker` backend: one long-lived, locked-down container per sandbox.

The container runs `sleep infinity` (under docker's init, which reaps zombies) and each
`exec` is a `docker exec` into it, so processes and files persist between execs.
Hardening: no network, read-only root, all capabilities dropped, no-new-privileges,
non-root user (uid 1000), memory (no swap) / CPU / pids limits, and the work dir on a
size-capped tmpfs volume (its pages also count against the memory limit). Containers
and volumes carry `agenthub.*` labels naming their owner, so `sandbox.reap()` can remove
the ones a crashed process left behind.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from typing import Mapping

from agenthub.sandbox.base import MAX_OUTPUT, Command, ExecResult, Limits, Sandbox, SandboxError, decode_output
from agenthub.sandbox.images import docker_client, ensure_base_image

SANDBOX_USER = (1000, 1000)
LABEL = "agenthub.sandbox"
OWNER_LABEL = "agenthub.owner"  # "HOSTNAME:PID" of the process that started it
GRACE = 5.0  # seconds past an exec's timeout before the host stops waiting for its output


def owner_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class DockerSandbox(Sandbox):
    backend = "docker"
    file_owner = SANDBOX_USER

    def __init__(self, limits: Limits, workdir: str = "/workspace", image: str | None = None,
                 command: list[str] | None = None, mounts: Mapping[str, str] | None = None,
                 labels: Mapping[str, str] | None = None):
        """`command`: the container's main process (default: sleep forever);
        `mounts`: host dir -> container dir, bound read-write (e.g. for a unix socket)."""
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
                network_mode="bridge" if limits.network else "none",
                mem_limit=limits.memory, memswap_limit=limits.memory, nano_cpus=int(limits.cpus * 1e9),
                pids_limit=limits.pids, read_only=True, tmpfs={"/tmp": "size=64m,mode=1777"},
                cap_drop=["ALL"], security_opt=["no-new-privileges"], volumes=volumes)
        except Exception as e:
            self.volume.remove(force=True)
            raise SandboxError(f"cannot start a container from {self.image}: {e}") from e

    def exec(self, cmd: Command, timeout: float = 60, cwd: str | None = None,
             env: Mapping[str, str] | None = None) -> ExecResult:
        self._check_open()
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        # `timeout` (coreutils, in the image) kills the command's whole process group in
        # the container; the host only stops listening if even that fails.
        argv = ["timeout", "--kill-after=1", f"{timeout:.3f}", *argv]
        start = time.monotonic()
        api = self.client.api
        try:
            exec_id = api.exec_create(self.container.id, argv, workdir=self.resolve(cwd or self.workdir),
                                      environment=dict(env or {}))["Id"]
            stream = api.exec_start(exec_id, stream=True, demux=True)
        except Exception as e:
            raise SandboxError(f"docker exec failed (is the container still running?): {e}") from e
        out, err = bytearray(), bytearray()
        dropped = [0, 0]

        def collect() -> None:
            for chunk_out, chunk_err in stream:
                for i, (buf, chunk) in enumerate(((out, chunk_out), (err, chunk_err))):
                    if chunk:
                        room = MAX_OUTPUT - len(buf)
                        buf += chunk[:room]
                        dropped[i] += max(0, len(chunk) - room)

        reader = threading.Thread(target=collect, daemon=True)
        reader.start()
        reader.join(timeout + 1 + GRACE)
        duration = time.monotonic() - start
        if reader.is_alive():
            return ExecResult(137, decode_output(bytes(out), dropped[0]), decode_output(bytes(err), dropped[1]),
                              True, duration)
        code = api.exec_inspect(exec_id)["ExitCode"]
        code = 137 if code is None else int(code)
        timed_out = code in (124, 137) and duration >= timeout
        return ExecResult(code, decode_output(bytes(out), dropped[0]), decode_output(bytes(err), dropped[1]),
                          timed_out, duration)

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
        for remove in (lambda: self.container.remove(force=True), lambda: self.volume.remove(force=True)):
            try:
                remove()
            except docker.errors.NotFound:
                pass

    def _put_archive(self, dest_dir: str, archive: bytes) -> None:
        made = self.exec(["mkdir", "-p", dest_dir], timeout=30)
        if not made.ok:
            raise SandboxError(f"cannot create {dest_dir} in the sandbox: {made.stderr.strip()}")
        try:
            self.client.api.put_archive(self.container.id, dest_dir, archive)
        except Exception as e:
            raise SandboxError(f"cannot write into {dest_dir}: {e}") from e

    def _get_archive(self, path: str) -> bytes:
        import docker.errors
        try:
            stream, _ = self.client.api.get_archive(self.container.id, path)
        except docker.errors.NotFound:
            raise SandboxError(f"{path}: no such file or directory in the sandbox") from None
        return b"".join(stream)

    def logs(self) -> str:
        """The main process's output (useful when `command` is a server that died)."""
        try:
            return self.container.logs().decode(errors="replace")
        except Exception:
            return ""

