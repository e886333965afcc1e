"""`agenthub rewards score` and `agenthub rewards train-progress`: reward modules on
saved trajectories, offline."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agenthub.cli.inputs import read_trajectories_checked, with_finite_rewards
from agenthub.errors import AgentHubError

SKIP_HELP = "leave out lines that are not trajectories (counted on stderr) instead of stopping at the first"
REWARD_HELP = ("a reward name (turn, outcome, gra, dra, spa, igpo; or their aliases turn_level, gated, progress, "
               "info_gain), an inline YAML mapping such as "
               "'{name: gra, threshold: 0.5}' or '{name: spa, estimator: DIR}', or a YAML list of terms "
               "(their weighted sum), as in a training config; repeat to compare modules")


def add_commands(sub: Any) -> None:
    p = sub.add_parser("rewards", help="score saved trajectories with reward modules; train SPA estimators")
    commands = p.add_subparsers(dest="rewards_command", required=True, metavar="COMMAND")

    score = commands.add_parser("score", help="re-score a trajectories JSONL with one or more reward modules")
    score.add_argument("trajectories", help="a trajectories.jsonl (from agenthub eval or training)")
    score.add_argument("--reward", action="append", required=True, metavar="NAME", help=REWARD_HELP)
    score.add_argument("--out", default=None, metavar="FILE",
                       help="write the trajectories with every module's reward components to this JSONL")
    score.add_argument("--report", default=None, metavar="FILE",
                       help="write an HTML report: per-turn rewards of each module, side by side")
    score.add_argument("--skip-invalid", action="store_true", help=SKIP_HELP)
    score.set_defaults(func=cmd_score)

    train = commands.add_parser("train-progress", help="train an SPA progress estimator on explored trajectories")
    train.add_argument("trajectories", help="a trajectories.jsonl with both won and lost episodes")
    train.add_argument("--out", required=True, metavar="DIR", help="where to save the estimator")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--size", choices=["tiny", "small"], default="tiny", help="backbone size, built from scratch")
    train.add_argument("--backbone", default=None, metavar="PATH",
                       help="a model to use as the backbone instead: a HF directory, Hub id, .gguf file, "
                            "adapter directory or known name (smollm2-135m-instruct)")
    train.add_argument("--heldout", type=float, default=0.1, help="share of tasks held out for evaluation")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--skip-invalid", action="store_true", help=SKIP_HELP)
    train.set_defaults(func=cmd_train_progress)


def _reward_config(spec: str) -> Any:
    if spec.lstrip().startswith(("{", "[")):
        import yaml

        try:
            return yaml.safe_load(spec)
        except yaml.YAMLError as e:
            raise AgentHubError(f"--reward {spec!r} is not valid YAML: {str(e).splitlines()[0]}") from e
    return spec


def _label(cfg: Any, module: Any) -> str:
    """A short name for a module in printouts and the report: "gra", "turn(scale=practitioner)"."""
    if isinstance(cfg, dict):
        settings = ", ".join(f"{k}={v}" for k, v in cfg.items() if k != "name")
        return f"{cfg.get('name')}({settings})" if settings else str(cfg.get("name"))
    return cfg if isinstance(cfg, str) else module.namespace


def cmd_score(args: argparse.Namespace) -> int:
    from agenthub.rewards import from_config
    from agenthub.rewards.offline import rescore, summarise, write_comparison_report
    from agenthub.types import write_trajectories

    trajectories = with_finite_rewards(read_trajectories_checked(args.trajectories, args.skip_invalid),
                                       args.trajectories)
    configs = [_reward_config(spec) for spec in args.reward]
    modules = [from_config(cfg) for cfg in configs]
    scored = {}
    for cfg, module in zip(configs, modules):
        label = _label(cfg, module)
        if label in scored:
            label = f"{label} #{len(scored) + 1}"
        scored[label] = rescore(module, trajectories)
        row = summarise(trajectories, *scored[label])
        figures = [f"mean return {row['mean return']:.3f}"]
        figures += [f"{name} {row[name]:.3f}" for name in ("won", "lost") if row[name] is not None]
        figures += [f"{k} {v:.3f}" for k, v in sorted(row["metrics"].items())]
        print(f"{label}: " + ", ".join(figures))
    if args.out:
        Path(args.out).unlink(missing_ok=True)
        write_trajectories(args.out, trajectories)
        print(f"wrote {args.out}")
    if args.report:
        write_comparison_report(args.report, args.trajectories, trajectories, scored)
        print(f"wrote {args.report}")
    return 0


def cmd_train_progress(args: argparse.Namespace) -> int:
    from agenthub.trainers.progress_estimator import train_progress_estimator

    trajectories = with_finite_rewards(read_trajectories_checked(args.trajectories, args.skip_invalid),
                                       args.trajectories)
    info = train_progress_estimator(trajectories, args.out, backbone=args.backbone, size=args.size,
                                    epochs=args.epochs, lr=args.lr, heldout=args.heldout, seed=args.seed)
    print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items()))
    print(f"wrote {args.out} (use it with --reward '{{name: spa, estimator: {args.out}}}')")
    return 0
