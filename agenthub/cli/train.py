"""`agenthub train CONFIG.yaml [--out DIR] [--resume] [--ray ADDRESS|local] [KEY=VALUE ...]`.

Under `torchrun --nproc_per_node N -m agenthub train ...` the N processes train one
model data-parallel (`agenthub.trainers.distributed`); rank 0 alone prints and writes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agenthub.errors import AgentHubError


def add_commands(sub: Any) -> None:
    p = sub.add_parser("train", help="train an agent (SFT warm-start, GRPO / RLOO / Dr.GRPO) from a YAML config")
    p.add_argument("config", help="a training config (see trainers/configs/*.yaml)")
    _add_options(p)
    p.add_argument("overrides", nargs=argparse.REMAINDER, metavar="KEY=VALUE",
                   help="override settings with dotted keys, e.g. steps=50 loss.kl_coef=0.01 rollout.mode=choice")
    p.set_defaults(func=cmd_train)


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="run directory (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--ray", default=None, metavar="ADDRESS|local",
                   help="play the envs of rollouts and evaluations on a Ray cluster (the model stays here)")


def cmd_train(args: argparse.Namespace) -> int:
    # options may also come after the overrides, which argparse collects with them
    late = argparse.ArgumentParser(prog="agenthub train", add_help=False)
    _add_options(late)
    options, overrides = late.parse_known_args(args.overrides)
    try:
        from agenthub.trainers import distributed
        from agenthub.trainers.config import load_config
        from agenthub.trainers.grpo import train
    except ImportError as e:
        raise AgentHubError(f"training needs the train extra: pip install 'agenthub[train]' ({e})") from e
    config = load_config(args.config, overrides)
    out = Path(options.out or args.out or Path("runs") / Path(args.config).stem)
    with distributed.session():  # a process group under torchrun, nothing otherwise
        distributed.check_supported(config)
        main = distributed.is_main()
        results = train(config, out, resume=options.resume or args.resume, ray=options.ray or args.ray,
                        progress=main)
    if main:
        for mode, r in results.items():
            print(f"held-out success ({mode}): {r['success_rate']:.3f} on {r['episodes']} episodes")
        print(f"wrote {out}/model (final model), {out}/metrics.jsonl, {out}/report.html")
    return 0
