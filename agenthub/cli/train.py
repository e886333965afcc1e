"""`agenthub train CONFIG.yaml [--out DIR] [--resume] [KEY=VALUE ...]`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agenthub.errors import AgentHubError


def add_commands(sub: Any) -> None:
    p = sub.add_parser("train", help="train an agent (SFT warm-start, GRPO / RLOO / Dr.GRPO) from a YAML config")
    p.add_argument("config", help="a training config (see trainers/configs/*.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="override settings with dotted keys, e.g. steps=50 loss.kl_coef=0.01 rollout.mode=choice")
    p.add_argument("--out", default=None, help="run directory (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--ray", default=None, metavar="ADDRESS|local", help="play rollouts on a Ray cluster")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    if args.ray:
        raise AgentHubError("`agenthub train --ray` is not supported yet: rollouts run in this process")
    try:
        from agenthub.trainers.config import load_config
        from agenthub.trainers.grpo import train
    except ImportError as e:
        raise AgentHubError(f"training needs the train extra: pip install 'agenthub[train]' ({e})") from e
    config = load_config(args.config, args.overrides)
    out = Path(args.out or Path("runs") / Path(args.config).stem)
    results = train(config, out, resume=args.resume)
    for mode, r in results.items():
        print(f"held-out success ({mode}): {r['success_rate']:.3f} on {r['episodes']} episodes")
    print(f"wrote {out}/model (final model), {out}/metrics.jsonl, {out}/report.html")
    return 0
