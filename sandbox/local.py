"""The `local` backend: plain host processes with resource limits, for development.

NOT a security boundary: commands see the host's files and network and run as the
calling user. Use it where docker and bwrap are unavailable and the code is trusted;
nothing in agenthub falls back to it unasked. Containment of what an exec starts is a
best effort: each command's keeper (`exec_server.py`) adopts and kills whatever detached
itself (`setsid cmd &`, double forks) when the command ends, inside one cgroup per
sandbox when the caller is root, else under `subreaper.py`.
Commands run in a host temp dir that stands in for `workdir`: the file methods map
`workdir` paths onto it, and commands see its real path (also in `$WORKDIR`), so they
should use relative paths.
"""

from __future__ import annotations

import sys

from agenthub.sandbox.base import Limits, SandboxError
from agenthub.sandbox.host import BASE_ENV, EXEC_SERVER, HostSandbox


class LocalSandbox(HostSandbox):
    backend = "local"

    def __init__(self, limits: Limits, workdir: str = "/workspace", image: str | None = None):
        if image is not None:
            raise SandboxError("the local backend runs on the host itself and takes no image")
        super().__init__(limits, workdir)

    def _argv(self, argv: list[str], cwd: str, env: dict[str, str]) -> tuple[list[str], str, dict[str, str]]:
        return (argv, *self._command_view(cwd, env))

    def _command_view(self, cwd: str, env: dict[str, str]) -> tuple[str, dict[str, str]]:
        return str(self.host_path(cwd)), {**env, "HOME": str(self.host_workdir), "WORKDIR": str(self.host_workdir)}

    def _server_command(self, fd: int) -> tuple[list[str], str, dict[str, str]]:
        return self._argv([sys.executable, "-I", "-S", EXEC_SERVER, str(fd)], self.workdir, dict(BASE_ENV))
