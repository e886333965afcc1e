"""SFT only vs SFT then GRPO vs SFT then RLOO: does RL add anything to SFT, at equal RL compute?

    .venv/bin/python bench/recipes.py [--out runs/recipes] [--train-games 300] [--test-games 200]
        [--size tiny | --model SPEC] [--sft-model DIR] [--rl-steps 16] [--estimators grpo rloo]
        [--processes 2] [--json OUT.json] [KEY=VALUE ...]

The recipe is the demo's (trainers/configs/demo.yaml; KEY=VALUE overrides it, e.g.
`suite=textworld/w4-o6-q8 rollout.mode=choice sft.epochs=8`):
1. the suite's games, the oracle's demonstrations on the train games, a from-scratch
   `--size` model (`agenthub.demo.prepare`) -- or, with `--model SPEC`, a pretrained model
   (any model spec, e.g. `smollm2-135m-instruct`) trained with LoRA (`lora` defaults to
   r=8 on the attention projections, `sft.context_weight=0`, `sft.lr=5e-4`; KEY=VALUE
   overrides these too), which is also evaluated before any training (the "base" row);
2. SFT on the demonstrations, once (or `--sft-model DIR`, an SFT model made before);
3. from that one SFT model, RL with each estimator: the same steps, tasks per step and
   group size, so each sees the same number of rollouts and updates (equal compute),
   in OUT/ESTIMATOR-MODE (MODE: `rollout.mode`, free or choice);
4. every model (SFT only, and each RL run's final one) evaluated greedily on the same
   `--test-games` held-out games, in free generation and in choice mode.

Prints held-out success per recipe and mode, and per RL run the median step time, the
median generation tokens/s and the peak memory (GPU memory on CUDA, else the process's
peak RSS). Held-out success on n games has a standard error of sqrt(p(1-p)/n), about
±3.5 points at 200 games, so only gaps of twice that or more say something.
On the GPU machine: `suite=textworld/w4-o6-q8 --size small --train-games 700`.
Finished stages and evaluations are kept: rerunning with the same --out picks up where
it stopped, and a rerun with `rollout.mode=choice` adds choice-mode RL runs beside the
free ones, evaluating the SFT model only once.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agenthub.demo import CONFIG, MODES, evaluate_modes, prepare
from agenthub.errors import AgentHubError
from agenthub.trainers.config import TrainConfig, load_config
from agenthub.trainers.grpo import iter_metrics, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/recipes")
    parser.add_argument("--train-games", type=int, default=300)
    parser.add_argument("--test-games", type=int, default=200)
    parser.add_argument("--size", default="tiny", choices=["tiny", "small"])
    parser.add_argument("--model", help="a pretrained model spec to fine-tune with LoRA instead of a "
                                        "from-scratch --size model (e.g. smollm2-135m-instruct)")
    parser.add_argument("--sft-model", help="an SFT model to start from (skips steps 1-2; games are then "
                                           "generated as they are played)")
    parser.add_argument("--rl-steps", type=int, default=16)
    parser.add_argument("--estimators", nargs="+", default=["grpo", "rloo"], choices=["grpo", "rloo", "dr_grpo"])
    parser.add_argument("--processes", type=int, default=2, help="game generation processes")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES,
                        help="evaluation modes (choice mode scores every admissible command: slow for a 135M model)")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    try:
        compare(args)
    except AgentHubError as e:
        raise SystemExit(f"recipes: error: {e}")


def compare(args: argparse.Namespace) -> None:
    console = Console()
    out = Path(args.out)
    # a pretrained model keeps its weights (LoRA) and already reads text (no context loss);
    # the user's overrides come after these defaults, so they win
    pretrained = ["lora={}", "sft.context_weight=0", "sft.lr=5.0e-4"] if args.model else []
    config = load_config(CONFIG, [*pretrained, *args.overrides], base={})
    sft_model = Path(args.sft_model) if args.sft_model else out / "sft" / "model"
    timings: dict[str, dict[str, float]] = {}
    if not args.sft_model:
        config.model = str(prepare(out, config, args.train_games, args.test_games, args.processes,
                                   size=args.size, console=console, stages=4))
        if args.model:  # the from-scratch model prepare() made is not used
            config.model = args.model
        console.rule("SFT")
        timings["sft"] = run_stage(config, out / "sft", steps=0)

    models = {"base": Path(args.model)} if args.model and not args.sft_model else {}
    models["sft"] = sft_model
    for estimator in args.estimators:
        name = f"{estimator}-{config.rollout.mode}"
        console.rule(f"SFT then {estimator} ({config.rollout.mode} rollouts): {args.rl_steps} steps")
        config.model, config.sft = str(sft_model), None
        config.algorithm.estimator = estimator
        timings[name] = run_stage(config, out / name, steps=args.rl_steps)
        models[name] = out / name / "model"

    console.rule(f"evaluating every model on {args.test_games} held-out games")
    success = {}
    for name, model in models.items():
        success[name] = evaluation(model, out / "eval" / name, config.suite, args.test_games, args.modes,
                                   config.rollout.history)

    table = Table(title=f"{config.suite}: held-out success, {args.test_games} games, greedy")
    for column in ["recipe", *args.modes, "train min", "RL step s", "gen tok/s", "peak GB"]:
        table.add_column(column, justify="left" if column == "recipe" else "right")
    for name in models:
        t = timings.get(name, {})
        label = {"base": "no training", "sft": "sft only"}.get(name) or "sft + {} ({})".format(*name.split("-"))
        table.add_row(label, *(f"{success[name][m]:.1%} ± {stderr(success[name][m], args.test_games):.1%}"
                               for m in args.modes),
                      *(f"{t[k]:.{d}f}" if k in t else "-" for k, d in
                        (("minutes", 1), ("step_time", 2), ("generation_tokens_per_s", 0), ("peak_memory_gb", 2))))
    console.print(table)
    figures = {"suite": config.suite, "test_games": args.test_games, "rl_steps": args.rl_steps,
               "success": success, "timings": timings}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


def stderr(p: float, n: int) -> float:
    """The standard error of a success rate p measured on n independent games."""
    return math.sqrt(p * (1 - p) / n) if n else float("nan")


def evaluation(model: Path, out: Path, suite: str, games: int, modes: list[str],
               history: int | None) -> dict[str, float]:
    """Held-out success by mode, the policy seeing `history` exchanges as in training; an
    evaluation in OUT of the same model on as many games is reused."""
    files = {mode: out / ("" if mode == "free" else mode) / "results.json" for mode in modes}
    done = {mode: json.loads(f.read_text()) for mode, f in files.items() if f.exists()}
    if len(done) == len(modes) and all(r["episodes"] == games and r["agent"].split(" ")[0] == f"hf:{model}"
                                       for r in done.values()):
        return {mode: r["success_rate"] for mode, r in done.items()}
    results = evaluate_modes(model, out, suite, games, history=history, modes=modes)
    return {mode: results[mode]["success_rate"] for mode in modes}


def run_stage(config: TrainConfig, out: Path, steps: int) -> dict[str, float]:
    """Train (or resume) one stage with no evaluation of its own. Its figures: minutes
    (the sum of its steps' times: training, not setup) and, for RL, the medians of step
    time and generation tokens/s and the peak memory."""
    config.steps, config.eval = steps, None
    if not (out / "model" / "config.json").exists():
        train(config, out, resume=(out / "metrics.jsonl").exists())
    metrics = list(iter_metrics(out / "metrics.jsonl"))
    figures = {"minutes": sum(m.get("step_time", 0.0) for m in metrics) / 60}
    rl = [m for m in metrics if m.get("phase") == "rl"]
    if rl:
        figures["step_time"] = statistics.median(m["step_time"] for m in rl)
        figures["generation_tokens_per_s"] = statistics.median(m["generation_tokens_per_s"] for m in rl)
        figures["peak_memory_gb"] = max(m["peak_memory_gb"] for m in rl)
    return figures


if __name__ == "__main__":
    main()
