"""`agenthub check ENV_ID`: the conformance suite (see `agenthub.plugin_kit.conformance`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

_STYLE = {"pass": "[green]PASS[/green]", "fail": "[bold red]FAIL[/bold red]", "skip": "[yellow]SKIP[/yellow]"}


def add_commands(sub: Any) -> None:
    p = sub.add_parser("check", help="run the conformance suite on an env (for plugin authors)",
                       description="Check an env against agenthub's contract: gymnasium's check_env on the made "
                                   "and the unwrapped env, deterministic reset, a fixed sample of hostile actions, "
                                   "the oracle winning (where there is one), the trajectory JSON round trip, and "
                                   "close being idempotent and leak-free. Exits 1 when a check fails.")
    p.add_argument("env_id")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], metavar="SEED", help="tasks to play (default 0 1)")
    p.add_argument("--cycles", type=int, default=3, help="make/reset/step/close cycles of the leak check")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per played episode")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from agenthub.plugin_kit.conformance import run_checks

    console = Console(stderr=args.json)
    with console.status(f"checking {args.env_id} ...") as status:
        results = run_checks(args.env_id, seeds=args.seeds, cycles=max(1, args.cycles), episode_timeout=args.timeout,
                             on_result=lambda r: status.update(f"checking {args.env_id}: {r.name} {r.status} ..."))
    failed = [r for r in results if r.status == "fail"]
    if args.json:
        print(json.dumps({"env_id": args.env_id, "passed": not failed, "checks": [r.to_dict() for r in results]},
                         indent=2))
    else:
        table = Table("check", "result", "detail", "s", title=f"agenthub check {args.env_id}")
        for r in results:
            table.add_row(r.name, _STYLE[r.status], r.detail, f"{r.seconds:.1f}")
        console.print(table)
        console.print(f"[bold red]{len(failed)} check(s) failed[/bold red]" if failed
                      else "[green]all checks passed[/green]")
    return 1 if failed else 0
