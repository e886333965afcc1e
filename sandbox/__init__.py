"""Sandboxes: run untrusted commands with limits, on docker, bwrap or the local host.

    from agenthub import sandbox
    with sandbox.open("bwrap", memory="1g", cpus=1, pids=256) as box:
        r = box.exec("python3 -c 'print(1)'", timeout=10)   # r.exit_code, r.stdout, ...
        box.write_file("/workspace/a.txt", "hi")

Backends, strongest first:
- `docker`: a container from a locally built image (`agenthub sandbox build`), no network,
  read-only root, non-root user, no capabilities, memory/CPU/pids limits, sized tmpfs work dir.
- `bwrap`: bubblewrap namespaces per sandbox (one exec server inside runs the commands),
  read-only host system dirs, private work dir.
- `local`: host processes with limits only; for development, NOT a security boundary,
  used only when asked for by name (no env falls back to it: `check` says how to get
  bwrap or Docker).

On every backend nothing an exec starts outlives it, and the host's file operations
(`read_file`, `write_file`, `upload_dir`, `download_dir`) never follow a link the
sandbox planted out of its work dir: they raise `SandboxPathError` instead.

`Pool` keeps sandboxes started ahead of need; `reap()` removes ones leaked by dead processes.
This package only re-exports: backends.py chooses a backend, base.py is the protocol.
"""

from agenthub.sandbox.backends import BACKENDS, HOW_TO_ISOLATE, check, open, reap
from agenthub.sandbox.base import Command, ExecResult, Limits, Sandbox, SandboxError, SandboxPathError, parse_size
from agenthub.sandbox.pool import Pool

__all__ = ["BACKENDS", "HOW_TO_ISOLATE", "Command", "ExecResult", "Limits", "Pool", "Sandbox", "SandboxError",
           "SandboxPathError", "check", "open", "parse_size", "reap"]
