"""`agenthub swe build-suite`, `agenthub swe fetch`, `agenthub swe show`: making and
inspecting SWE task suites."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_commands(sub: Any) -> None:
    p = sub.add_parser("swe", help="SWE-style repository tasks: build and inspect suites")
    swe = p.add_subparsers(dest="swe_command", required=True, metavar="SUBCOMMAND")

    b = swe.add_parser("build-suite", help="inject bugs into real libraries and keep those their tests catch")
    b.add_argument("--out", required=True, help="folder for instances.json and README.md")
    b.add_argument("--name", default="pylibs", help="suite name (default pylibs)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--per-library", type=int, default=20, help="instances per library (default 20)")
    b.add_argument("--libraries", default=None, help="comma-separated (default: all known)")
    b.add_argument("--test-fraction", type=float, default=0.25, help="share of each library's instances "
                   "in the test split (default 0.25)")
    b.add_argument("--backend", default="bwrap", help="sandbox the suites run in (default bwrap)")
    b.add_argument("--workers", type=int, default=2, help="test runs at once (default 2)")
    b.add_argument("--max-tries", type=int, default=300, help="mutants tried per library at most (default 300)")
    b.set_defaults(func=cmd_build_suite)

    f = swe.add_parser("fetch", help="download and unpack the library snapshots (for offline use later)")
    f.set_defaults(func=cmd_fetch)

    s = swe.add_parser("show", help="print one instance as JSON (PASS_TO_PASS included)")
    s.add_argument("instance_id")
    s.add_argument("--suite", default="pylibs", help="a shipped suite name or a folder from build-suite")
    s.set_defaults(func=cmd_show)


def cmd_build_suite(args: argparse.Namespace) -> int:
    from agenthub.environments.swe.build import BuildOptions, build_suite
    from agenthub.environments.swe.libraries import LIBRARIES

    options = BuildOptions(name=args.name, seed=args.seed, per_library=args.per_library,
                           libraries=args.libraries.split(",") if args.libraries else list(LIBRARIES),
                           test_fraction=args.test_fraction, backend=args.backend, workers=args.workers,
                           max_tries=args.max_tries)
    suite = build_suite(Path(args.out), options)
    print(f"swe/{suite.name}: {len(suite.instances)} instances ({len(suite.split('train'))} train, "
          f"{len(suite.split('test'))} test); wrote {args.out}/instances.json and README.md")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from agenthub.environments.swe.libraries import LIBRARIES, snapshot

    for lib in LIBRARIES.values():
        print(f"{lib.snapshot_id}: {snapshot(lib)}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from agenthub.environments.swe.instances import load

    print(json.dumps(vars(load(args.suite).get(args.instance_id)), indent=2))
    return 0
