"""The `bwrap` backend: bubblewrap namespaces around a sandbox's exec server.

A sandbox is one bubblewrap instance with its own user, pid, network, ipc, uts and
cgroup namespaces, started at its first exec; its one process is the exec server
(`exec_server.py`, run on the root's own python3), which runs each command in it. The
root is a read-only view of the host's system directories (or of `image`, a root
filesystem directory with python3 and the mount points /dev, /proc, /tmp, /run and the
work dir), with a private /tmp, /dev and /proc, and the work dir
bound writable. Host files outside those system directories (home dirs, /work, /root,
/tmp) are simply not there. Run by root, the sandbox drops to the `nobody` user first.
This bwrap (0.8) has no overlay mounts, so files enter the work dir by copy
(upload_dir / write_file).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from agenthub.sandbox.base import Limits, SandboxError
from agenthub.sandbox.host import BASE_ENV, EXEC_SERVER, HostSandbox
from agenthub.sandbox.process import SUBREAPER, become

SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Host /etc files a program may need and that hold no secrets.
ETC_FILES = ("alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf",
             "ssl", "ca-certificates", "mime.types", "protocols", "services")
NETWORK_ETC_FILES = ("resolv.conf", "hosts", "host.conf", "gai.conf")
NOBODY = (65534, 65534)
SANDBOX_UID = 1000
SERVER_DIR = "/run/agenthub"  # where the exec server's two scripts are bound, read-only


class BwrapSandbox(HostSandbox):
    backend = "bwrap"

    def __init__(self, limits: Limits, workdir: str = "/workspace", image: str | None = None):
        if image is not None and not Path(image, "usr").is_dir():
            raise SandboxError(f"bwrap image must be a root filesystem directory, got {image!r}")
        self.bwrap = check_bwrap()
        self.image = image
        self.owner = NOBODY if os.geteuid() == 0 else None
        super().__init__(limits, workdir)
        etc = self.host_dir / "etc"
        etc.mkdir()
        (etc / "passwd").write_text(f"root:x:0:0::/root:/bin/sh\nsandbox:x:{SANDBOX_UID}:{SANDBOX_UID}::"
                                    f"{self.workdir}:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/sh\n")
        (etc / "group").write_text(f"root:x:0:\nsandbox:x:{SANDBOX_UID}:\nnogroup:x:65534:\n")

    def _argv(self, argv: list[str], cwd: str, env: dict[str, str]) -> tuple[list[str], str, dict[str, str]]:
        return self._wrap(argv, cwd, env, ["--die-with-parent"])

    def _command_view(self, cwd: str, env: dict[str, str]) -> tuple[str, dict[str, str]]:
        return cwd, env

    def _server_command(self, fd: int) -> tuple[list[str], str, dict[str, str]]:
        # No --die-with-parent: it fires when the *thread* that started bwrap ends. The
        # server ends with its control socket instead, which closes when this process dies.
        # A tmpfs, so that an image root (read-only) needs no mount points for them, only /run.
        binds = ["--tmpfs", "/run"] + [arg for script in (EXEC_SERVER, SUBREAPER)
                                       for arg in ("--ro-bind", script, f"{SERVER_DIR}/{Path(script).name}")]
        return self._wrap(["python3", "-I", "-S", f"{SERVER_DIR}/{Path(EXEC_SERVER).name}", str(fd)],
                          self.workdir, dict(BASE_ENV), binds)

    def _wrap(self, argv: list[str], cwd: str, env: dict[str, str], extra: list[str]
              ) -> tuple[list[str], str, dict[str, str]]:
        args = [self.bwrap, "--unshare-all", "--new-session", "--hostname", "sandbox",
                "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--clearenv"]
        if self.limits.network:
            args.append("--share-net")
        args += self._root_args()
        args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                 "--bind", str(self.host_workdir), self.workdir, *extra, "--remount-ro", "/", "--chdir", cwd]
        for key, value in env.items():
            args += ["--setenv", key, value]
        return [*args, "--", *argv], str(self.host_dir), {}

    def _root_args(self) -> list[str]:
        if self.image is not None:
            return ["--ro-bind", self.image, "/"]
        args = []
        for name in SYSTEM_DIRS:
            path = Path("/", name)
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        etc_files = ETC_FILES + (NETWORK_ETC_FILES if self.limits.network else ())
        for name in etc_files:
            if Path("/etc", name).exists():
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        for name in ("passwd", "group"):
            args += ["--ro-bind", str(self.host_dir / "etc" / name), f"/etc/{name}"]
        return args


def check_bwrap() -> str:
    """The bwrap binary, checked to be able to make its namespaces here (SandboxError if not)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError("the bwrap backend needs bubblewrap: apt-get install bubblewrap")
    _check_bwrap_runs(bwrap, NOBODY if os.geteuid() == 0 else None)
    return bwrap


@functools.cache
def _check_bwrap_runs(bwrap: str, owner: tuple[int, int] | None) -> None:
    """bwrap needs user namespaces; say so once, clearly, rather than failing every exec."""
    proc = subprocess.run([bwrap, "--unshare-all", "--ro-bind", "/", "/", "true"], capture_output=True, text=True,
                          preexec_fn=(lambda: become(owner)) if owner is not None else None)
    if proc.returncode != 0:
        raise SandboxError(f"bwrap cannot create its namespaces here: {proc.stderr.strip()} "
                           f"(unprivileged user namespaces may be disabled)")
