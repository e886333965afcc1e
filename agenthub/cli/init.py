"""`agenthub init NAME`: scaffold a plugin distribution (see `agenthub.plugin_kit.scaffold`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: Any) -> None:
    p = sub.add_parser("init", help="scaffold a plugin distribution with an env, a suite and tests",
                       description="Write NAME/ : a pip-installable plugin (pyproject with an agenthub.environments "
                                   "entry point, src/PACKAGE with an agenthub.Env subclass and its registration, "
                                   "a task suite, tests and a README) that passes its own tests as generated.")
    p.add_argument("name", help="the distribution name, e.g. corridor-envs (lowercase, digits, '-', '_')")
    p.add_argument("--dir", default=".", help="the folder to create NAME/ in (default: here)")
    p.add_argument("--family", default=None,
                   help="the env id family (default: NAME without a leading 'agenthub-' and a trailing '-envs')")
    p.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    from agenthub.plugin_kit.scaffold import scaffold

    names, written = scaffold(args.name, args.dir, args.family)
    root = written[0].parent
    print(f"wrote {len(written)} files in {root}: env {names.env_id} ({names.package}.env.{names.class_name}), "
          f"suite {names.suite}")
    print(f"next: cd {root} && pip install -e '.[dev]' && pytest && agenthub check {names.env_id}")
    return 0
