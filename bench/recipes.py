"""Where does RL add to SFT? SFT only, SFT for longer, and SFT then RL arms, with curves.

    .venv/bin/python bench/recipes.py [--out runs/recipes] [--train-games 600] [--test-games 200]
        [--rl-games 1000] [--size tiny | --model SPEC] [--sft-model DIR] [--rl-steps 16]
        [--eval-every STEPS] [--arms grpo rloo ...] [--processes 2] [--modes free choice]
        [--json OUT.json] [KEY=VALUE ...]

The recipe is the demo's (trainers/configs/demo.yaml; KEY=VALUE overrides it for every
stage, e.g. `suite=textworld/w4-o6-q8 optim.lr=1e-5 sft.epochs=8`):
1. the suite's games, the oracle's demonstrations on the first `--train-games` train
   games, a from-scratch `--size` model (`agenthub.demo.prepare`) -- or, with `--model
   SPEC`, a pretrained model (any model spec, e.g. `smollm2-135m-instruct`) trained with
   LoRA (`lora` defaults to r=8 on the attention projections, `sft.context_weight=0`,
   `sft.lr=5e-4`; KEY=VALUE overrides these too), which is also evaluated before any
   training (the "base" row);
2. SFT on the demonstrations, once (or `--sft-model DIR`, an SFT model made before);
3. from that one SFT model, each RL arm (`ARMS`: estimator, KL penalty, reward signal,
   rollout mode) for `--rl-steps` steps on the next `--rl-games` train games, which the
   SFT never saw (`rollout.task_range`), saving a checkpoint every `--eval-every` steps;
   the `sft-more` arm instead goes on with SFT, on the oracle's walkthroughs of those same
   fresh games, for about as many minutes as the RL arms took (their median): what the
   time would have bought spent on SFT;
4. the SFT model, every RL checkpoint (the curve) and every arm's final model evaluated
   greedily on the same `--test-games` held-out games, in free generation and choice mode.

Prints, per arm, held-out success ± its standard error sqrt(p(1-p)/n) (about ±3.5 points
at 200 games: only gaps of twice that say something) at every checkpoint against the
minutes of training it took (step times: rollouts and updates, not evaluation), and per
RL arm the median step time, generation tokens/s and peak memory (GPU memory on CUDA,
else the process's peak RSS). On the GPU machine: `suite=textworld/w4-o6-q8 --size small
--train-games 700`. Finished stages and evaluations are kept: rerunning with the same
--out picks up where it stopped, and adds arms that were not run before.
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import itertools
import json
import math
import statistics
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agenthub.demo import CONFIG, MODES, evaluate_modes, prepare
from agenthub.errors import AgentHubError
from agenthub.trainers.config import TrainConfig, load_config
from agenthub.trainers.grpo import iter_metrics, train

# name -> (what it is, its overrides of the recipe's RL stage)
ARMS: dict[str, tuple[str, list[str]]] = {
    "grpo": ("GRPO, outcome reward", []),
    "rloo": ("RLOO, outcome reward", ["algorithm.estimator=rloo"]),
    "grpo-kl": ("GRPO + KL 0.05 to the SFT model", ["loss.kl_coef=0.05"]),
    # "A Practitioner's Guide to Multi-turn Agentic RL": dense per-turn rewards scaled to the
    # outcome, with turn-level advantages
    "turn": ("GRPO, dense turn-level rewards, turn-level advantages",
             ["reward={name: turn, scale: practitioner}", "algorithm.turn_level=true"]),
    "gra": ("GRPO, G-RA (dense rewards gated on the outcome), turn-level advantages",
            ["reward={name: gra, threshold: 1.0, immediate: reward}", "algorithm.turn_level=true",
             "algorithm.gamma=0.95"]),
    "grpo-choice": ("GRPO, outcome reward, choice-mode rollouts", ["rollout.mode=choice"]),
}
SFT_MORE = "sft-more"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/recipes")
    parser.add_argument("--train-games", type=int, default=600, help="games the SFT learns from")
    parser.add_argument("--test-games", type=int, default=200)
    parser.add_argument("--rl-games", type=int, default=1000,
                        help="fresh train games after the SFT's that the RL arms (and sft-more) play")
    parser.add_argument("--size", default="tiny", choices=["tiny", "small"])
    parser.add_argument("--model", help="a pretrained model spec to fine-tune with LoRA instead of a "
                                        "from-scratch --size model (e.g. smollm2-135m-instruct)")
    parser.add_argument("--sft-model", help="an SFT model to start from (skips steps 1-2)")
    parser.add_argument("--rl-steps", type=int, default=16)
    parser.add_argument("--eval-every", type=int, default=0, help="RL steps between the curve's points; "
                                                                  "0: the final model only")
    parser.add_argument("--arms", nargs="+", default=["grpo", "rloo"], choices=[*ARMS, SFT_MORE])
    parser.add_argument("--processes", type=int, default=2, help="game generation processes")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES,
                        help="evaluation modes (choice mode scores every admissible command: slow for a 135M model)")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    if not faulthandler.is_enabled():  # a native crash prints every thread's Python stack before dying
        faulthandler.enable()
    if args.eval_every < 0 or args.rl_steps < 1 or args.rl_games < 1:
        parser.error("--rl-steps and --rl-games must be at least 1, --eval-every at least 0")
    try:
        compare(args)
    except AgentHubError as e:
        raise SystemExit(f"recipes: error: {e}")


def compare(args: argparse.Namespace) -> dict[str, Any]:
    from agenthub.suites import get_suite, load_suite
    from agenthub.environments.textworld import pregenerate

    console = Console(width=max(Console().width, 110))  # the table's columns stay whole in a log file
    out = Path(args.out)
    # a pretrained model keeps its weights (LoRA) and already reads text (no context loss);
    # the user's overrides come after these defaults, so they win
    pretrained = ["lora={}", "sft.context_weight=0", "sft.lr=5.0e-4"] if args.model else []
    overrides = [*pretrained, *args.overrides]
    config = load_config(CONFIG, overrides, base={})
    sft_model = Path(args.sft_model) if args.sft_model else out / "sft" / "model"
    timings: dict[str, dict[str, float]] = {}
    if not args.sft_model:
        config.model = str(prepare(out, config, args.train_games, args.test_games, args.processes,
                                   size=args.size, console=console, stages=4))
        if args.model:  # the from-scratch model prepare() made is not used
            config.model = args.model
        console.rule("SFT")
        timings["sft"] = run_stage(config, out / "sft", steps=0)
    fresh = (args.train_games, args.train_games + args.rl_games)
    console.rule(f"the RL games: train games {fresh[0]}-{fresh[1] - 1}")
    rl_tasks = load_suite(config.suite, "train")[slice(*fresh)]
    pregenerate(get_suite(config.suite).env_id, [t.seed for t in rl_tasks], processes=args.processes)

    checkpoints: dict[str, dict[int, Path]] = {"sft": {0: sft_model}}  # arm -> RL step -> model
    for arm in [a for a in args.arms if a in ARMS]:
        what, arm_overrides = ARMS[arm]
        console.rule(f"SFT then {what}: {args.rl_steps} steps")
        arm_config = load_config(CONFIG, [*overrides, *arm_overrides], base={})
        arm_config.model, arm_config.sft, arm_config.rollout.task_range = str(sft_model), None, fresh
        if args.eval_every:
            arm_config.save_every, arm_config.keep_checkpoints = args.eval_every, args.rl_steps // args.eval_every + 1
        timings[arm] = run_stage(arm_config, out / arm, steps=args.rl_steps)
        checkpoints[arm] = {step: out / arm / "checkpoints" / f"step-{step:06d}"
                            for step in range(args.eval_every, args.rl_steps, args.eval_every or args.rl_steps)}
        checkpoints[arm][args.rl_steps] = out / arm / "model"
    if SFT_MORE in args.arms:
        minutes = statistics.median([t["minutes"] for a, t in timings.items() if a in ARMS] or [5.0])
        console.rule(f"SFT for about {minutes:.1f} more minutes, on the fresh games' walkthroughs")
        timings[SFT_MORE] = sft_more(config, out, sft_model, rl_tasks, minutes)
        checkpoints[SFT_MORE] = {0: out / SFT_MORE / "model"}

    console.rule(f"evaluating every model on {args.test_games} held-out games")
    models = {"base": {0: Path(args.model)}} if args.model and not args.sft_model else {}
    models.update(checkpoints)
    success = {arm: {step: evaluation(model, out / "eval" / arm / f"step-{step}", config.suite, args.test_games,
                                      args.modes, config.rollout.history)
                     for step, model in points.items()} for arm, points in models.items()}
    minutes_at = {arm: minutes_by_step(out / arm) for arm in ARMS if arm in models}
    figures = {"suite": config.suite, "test_games": args.test_games, "rl_steps": args.rl_steps,
               "rl_games": list(fresh), "success": success, "timings": timings, "minutes_at": minutes_at}
    print_tables(console, args, figures)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return figures


def sft_more(config: TrainConfig, out: Path, sft_model: Path, tasks: list[Any], minutes: float) -> dict[str, float]:
    """Go on with SFT from `sft_model` on the oracle's walkthroughs of `tasks` for about
    `minutes`: as many SFT steps as the first SFT's median step time (its run's
    metrics.jsonl, beside `sft_model`) allows, in whole epochs over as many of the games
    as that covers. Raises AgentHubError when that SFT left no metrics."""
    import copy

    from agenthub.trainers.sft import demonstrations
    from agenthub.types import read_trajectories, write_trajectories

    assert config.sft is not None
    metrics = sft_model.parent / "metrics.jsonl"
    times = [m["step_time"] for m in steps_logged(sft_model.parent) if m.get("phase") == "sft"] \
        if metrics.exists() else []
    if not times:
        raise AgentHubError(f"the sft-more arm needs the SFT's step times, in {metrics}")
    budget = max(1, round(minutes * 60 / statistics.median(times)))  # SFT steps
    data = out / SFT_MORE / "demonstrations.jsonl"
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        write_trajectories(data, demonstrations(dataclasses.replace(config.sft, data=None), config.suite,
                                                tasks=tasks))
    demos = read_trajectories(data)
    # one example per step with a history window, one per game with the whole chat (trainers.sft)
    per_game = statistics.mean(len(t.turns) for t in demos) if config.rollout.history is not None else 1
    games = min(len(demos), max(1, round(budget * config.sft.batch_size / per_game)))
    epochs = max(1, round(budget * config.sft.batch_size / (games * per_game)))
    if games < len(demos):
        data = out / SFT_MORE / f"demonstrations-{games}.jsonl"
        data.unlink(missing_ok=True)
        write_trajectories(data, demos[:games])
    more = copy.deepcopy(config)
    more.model, more.sft.data, more.sft.tasks, more.sft.epochs = str(sft_model), str(data), games, epochs
    return run_stage(more, out / SFT_MORE, steps=0)


def minutes_by_step(run: Path) -> dict[int, float]:
    """Training minutes (step times) of an RL run after each of its steps."""
    times = {m["step"]: m["step_time"] for m in steps_logged(run) if m.get("phase") == "rl"}
    steps = sorted(times)
    return {step: total / 60 for step, total in zip(steps, itertools.accumulate(times[s] for s in steps))}


def steps_logged(run: Path) -> list[dict[str, Any]]:
    """The metrics of each step of a run (SFT and RL), the last record of a step that was
    logged twice (a run resumed from a checkpoint before it, after a crash)."""
    last: dict[tuple[str, int], dict[str, Any]] = {}
    for m in iter_metrics(run / "metrics.jsonl"):
        if "step_time" in m:
            last[m.get("phase", ""), m.get("step", m.get("sft_step", 0))] = m
    return list(last.values())


def print_tables(console: Console, args: argparse.Namespace, figures: dict[str, Any]) -> None:
    success, timings, minutes_at = figures["success"], figures["timings"], figures["minutes_at"]
    n = args.test_games
    table = Table(title=f"{figures['suite']}: held-out success, {n} games, greedy; RL on train games "
                        f"{figures['rl_games'][0]}-{figures['rl_games'][1] - 1}")
    for column in ["recipe", "RL steps", "train min", *args.modes, "RL step s", "gen tok/s", "peak GB"]:
        table.add_column(column, justify="left" if column == "recipe" else "right")
    labels = {"base": "no training", "sft": "SFT only", SFT_MORE: "SFT + more SFT",
              **{arm: f"SFT + {arm}" for arm in ARMS}}
    for arm, points in success.items():
        t = timings.get(arm, {})
        for step, rates in points.items():
            last = step == max(points)
            minutes = minutes_at.get(arm, {}).get(step, t.get("minutes") if last else None)
            table.add_row(labels[arm] if step == min(points) else "", str(step) if arm in ARMS else "",
                          f"{minutes:.1f}" if minutes is not None else "-",
                          *(f"{rates[m]:.1%} ± {stderr(rates[m], n):.1%}" for m in args.modes),
                          *(f"{t[k]:.{d}f}" if k in t and last else "" for k, d in
                            (("step_time", 2), ("generation_tokens_per_s", 0), ("peak_memory_gb", 2))))
    console.print(table)
    for arm in success:
        if arm in ARMS:
            console.print(f"{arm}: {ARMS[arm][0]}")
    if SFT_MORE in success:
        console.print(f"{SFT_MORE}: SFT on the oracle's walkthroughs of the RL games for the RL arms' median minutes")


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
    metrics = steps_logged(out)
    figures = {"minutes": sum(m["step_time"] for m in metrics) / 60}
    rl = [m for m in metrics if m.get("phase") == "rl"]
    if rl:
        figures["step_time"] = statistics.median(m["step_time"] for m in rl)
        figures["generation_tokens_per_s"] = statistics.median(m["generation_tokens_per_s"] for m in rl)
        figures["peak_memory_gb"] = max(m["peak_memory_gb"] for m in rl)
    return figures


if __name__ == "__main__":
    main()
