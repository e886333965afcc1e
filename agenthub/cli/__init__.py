"""The `agenthub` command line. Each command group lives in its own module with an
`add_commands(subparsers)` function; `main` wires them up and turns user mistakes
(AgentHubError) into one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import importlib
import sys

from agenthub import __version__
from agenthub.errors import AgentHubError

COMMAND_MODULES = ["envs", "eval", "serve", "sandbox", "swe", "train", "model", "rewards"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agenthub", description="Multi-turn RL environments for LLM agents.")
    parser.add_argument("--version", action="version", version=f"agenthub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"agenthub.cli.{name}").add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
