"""The `local` backend: plain host processes with resource limits, for development.

NOT a security boundary: commands see the host's files and network and run as the
calling user. Use it where docker and bwrap are unavailable and the code is trusted;
nothing in agenthub falls back to it unasked. Containment of what an exec starts is a
best effort: a cgroup when the caller is root, else `subreaper.py`, which adopts and
kills whatever detached itself (`setsid cmd &`, double forks) when the command ends.
Commands run in a host temp dir that stands in for `workdir`: the file methods map
`workdir` paths onto it, and commands see its real path (also in `$WORKDIR`), so they
should use relative paths.
"""

from __future__ import annotations

from agenthub.sandbox.base import Limits, SandboxError
from agenthub.sandbox.host import HostSandbox


class LocalSandbox(HostSandbox):
    backend = "local"

    def __init__(self, limits: Limits, workdir: str = "/workspace", image: str | None = None):
        if image is not None:
            raise SandboxError("the local backend runs on the host itself and takes no image")
        super().__init__(limits, workdir)

    def _argv(self, argv: list[str], cwd: str, env: dict[str, str]) -> tuple[list[str], str, dict[str, str]]:
        host_cwd = str(self.host_path(cwd))
        return argv, host_cwd, {**env, "HOME": str(self.host_workdir), "WORKDIR": str(self.host_workdir)}
