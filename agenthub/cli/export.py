"""`agenthub export SOURCE --to DIR`: trajectories or a suite's tasks as a Hugging Face
`datasets` dataset (see `agenthub.dataset_export` for the columns)."""

from __future__ import annotations

import argparse
from typing import Any

SUITE_PREFIX = "suite:"


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "export", help="write trajectories or a suite's tasks as a Hugging Face dataset",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write a Hugging Face `datasets` dataset that datasets.load_from_disk(DIR) reads.\n\n"
                    "SOURCE is either\n"
                    "  TRAJECTORIES.jsonl       one row per episode: messages, rewards, per-turn reward\n"
                    "                           components, outcome, success, stop_reason, env_id, task_id\n"
                    "  suite:NAME[:SPLIT]       one row per task (env_id, task_id, seed, kwargs); without\n"
                    "                           SPLIT a DatasetDict of every split, e.g.\n"
                    "                           suite:textworld/w2-o3-q4:test")
    p.add_argument("source", metavar="SOURCE", help="TRAJECTORIES.jsonl or suite:NAME[:SPLIT]")
    p.add_argument("--to", required=True, metavar="DIR", help="a new (or empty) directory for the dataset")
    p.add_argument("--skip-invalid", action="store_true",
                   help="leave out lines that are not trajectories (counted on stderr) instead of stopping")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="suites: at most N tasks per split")
    p.add_argument("--prompts", action="store_true",
                   help="suites: add each task's first observation and tool specs (resets every task's env)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from agenthub.dataset_export import save, suite_dataset, trajectories_dataset
    from agenthub.errors import AgentHubError

    if args.limit is not None and args.limit < 1:
        raise AgentHubError(f"--limit must be at least 1, not {args.limit}")
    if args.source.startswith(SUITE_PREFIX):
        name, _, split = args.source[len(SUITE_PREFIX):].partition(":")
        if not name:
            raise AgentHubError(f"bad source {args.source!r}: write suite:NAME[:SPLIT], "
                                "e.g. suite:textworld/w2-o3-q4:test")
        dataset = suite_dataset(name, split or None, args.limit, args.prompts)
    else:
        from agenthub.cli.inputs import read_trajectories_checked

        dataset = trajectories_dataset(read_trajectories_checked(args.source, args.skip_invalid))
    path = save(dataset, args.to)
    sizes = {k: len(v) for k, v in dataset.items()} if hasattr(dataset, "items") else {"rows": len(dataset)}
    print(f"wrote {path} ({', '.join(f'{k} {v}' for k, v in sizes.items())}): datasets.load_from_disk({str(path)!r})")
    return 0
