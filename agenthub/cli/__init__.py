"""The `agenthub` command line. Each command group lives in its own module with an
`add_commands(subparsers)` function; `main` wires them up and turns user mistakes
(AgentHubError) into one line on stderr and a non-zero exit; anything else that
escapes a command is one line too (AGENTHUB_TRACEBACK=1 shows the traceback)."""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import os
import sys

from agenthub import __version__
from agenthub.errors import AgentHubError
from agenthub.loading import load_object
from agenthub.registry import commands

COMMAND_MODULES = ["envs", "eval", "serve", "sandbox", "train", "model", "rewards", "init", "check", "export"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agenthub", description="Multi-turn RL environments for LLM agents.")
    parser.add_argument("--version", action="version", version=f"agenthub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"agenthub.cli.{name}").add_commands(sub)
    for name, target in commands().items():  # e.g. `agenthub swe`, added by the swe family
        load_object(target, f"CLI command {name!r}")(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # a native crash (an env's C engine, a torch kernel) prints every thread's Python stack first
    if not faulthandler.is_enabled():
        faulthandler.enable()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AgentHubError as e:
        print(f"agenthub: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("agenthub: interrupted (everything already written was kept)", file=sys.stderr)
        return 130
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"agenthub: error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 2
    except Exception as e:  # unforeseen input or a bug: still one line; the traceback on request
        if os.environ.get("AGENTHUB_TRACEBACK"):
            raise
        first = (str(e).strip().splitlines() or [""])[0][:300]
        print(f"agenthub: error: {type(e).__name__}: {first} (AGENTHUB_TRACEBACK=1 shows the traceback)",
              file=sys.stderr)
        return 1


def entry() -> None:
    """The `agenthub` console script (and `python -m agenthub`): `main`, then exit with
    its code. An episode thread a timeout or Ctrl-C abandoned may still be inside native
    model code (torch) or hold a lock, and the interpreter's shutdown then aborts the
    process (SIGABRT, exit 134) or hangs, after everything was written; with such a thread
    alive, exit at once instead."""
    code = main()
    from agenthub.runner import abandoned_threads
    if abandoned_threads():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
