"""`agenthub sandbox build` (base images, locally, no registry) and `agenthub sandbox reap`."""

from __future__ import annotations

import argparse
from typing import Any

from agenthub.errors import AgentHubError


def add_commands(sub: Any) -> None:
    group = sub.add_parser("sandbox", help="sandbox images and housekeeping")
    commands = group.add_subparsers(dest="sandbox_command", required=True, metavar="COMMAND")
    p = commands.add_parser("build", help="build the base sandbox image(s) locally (debootstrap + docker)")
    p.add_argument("--backend", default="docker", choices=["docker", "bwrap", "local"])
    p.add_argument("--env", dest="env_id", help="also build the image this env runs in (its family's)")
    p.set_defaults(func=cmd_build)
    p = commands.add_parser("reap", help="remove sandboxes left behind by processes that died")
    p.add_argument("--max-age", type=float, default=None, help="also remove any older than this many seconds")
    p.set_defaults(func=cmd_reap)


def cmd_build(args: argparse.Namespace) -> int:
    if args.backend != "docker":
        print(f"the {args.backend} backend runs on the host's own system directories: nothing to build")
        return 0
    from rich.console import Console

    from agenthub.sandbox import images

    console = Console(stderr=True)
    client = images.docker_client()
    with console.status("checking images") as status:
        def report(line: str) -> None:
            status.update(line)
            if ": Step" not in line:  # docker's per-step lines only update the spinner
                console.log(line)
        tag = images.ensure_base_image(client, report=report)
        if args.env_id:
            from agenthub.registry import spec
            tag = images.image_for_env(spec(args.env_id).id, client, report=report)
    print(tag)
    return 0


def cmd_reap(args: argparse.Namespace) -> int:
    from agenthub.sandbox import reap
    if args.max_age is not None and args.max_age < 0:
        raise AgentHubError("--max-age must be >= 0")
    print(f"removed {reap(args.max_age)} leaked sandbox(es)")
    return 0
