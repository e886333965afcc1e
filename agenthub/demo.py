"""`make demo`: train a from-scratch model to play TextWorld, on a CPU, in minutes.

1. generate the small TextWorld suite's train and held-out test games;
2. play the train games with the oracle (their walkthroughs): the SFT demonstrations;
3. build a tiny model from scratch (its tokenizer fitted to the demonstrations' text);
4. evaluate it on the held-out games (before), in free generation and choice mode;
5. SFT on the walkthroughs (trainers/configs/demo.yaml; with `rollout.history=K` one
   example per step, see agenthub.trainers.history), evaluate again;
6. GRPO from the SFT model, on the train games;
7. evaluate again on the same held-out games (after) and write report.html.

Writes OUT/before/results.json, OUT/sft-eval/results.json and OUT/after/results.json
(free generation, the default way to act), the same in choice mode under OUT/*/choice/,
OUT/sft/ and OUT/train/ (the SFT and the GRPO run: metrics, final model) and
OUT/report.html.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agenthub.errors import AgentHubError
from agenthub.report import Report, add_eval_section
from agenthub.types import Trajectory, read_trajectories, text_of, write_trajectories

if TYPE_CHECKING:
    from agenthub.trainers.config import TrainConfig

CONFIG = Path(__file__).resolve().parents[1] / "trainers" / "configs" / "demo.yaml"
MODES = ("free", "choice")
STAGES = {"before": "before training", "sft": "after SFT", "after": "after SFT + GRPO"}  # the report's columns
FOLDERS = {"before": "before", "sft": "sft-eval", "after": "after"}  # their evaluations in OUT


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m agenthub.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--train-games", type=int, default=600)
    parser.add_argument("--test-games", type=int, default=100)
    parser.add_argument("--processes", type=int, default=2, help="game generation processes")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="training config overrides (demo.yaml)")
    args = parser.parse_args(argv)
    if not faulthandler.is_enabled():  # a native crash prints every thread's Python stack before dying
        faulthandler.enable()
    try:
        run(Path(args.out), args.train_games, args.test_games, args.processes, args.overrides)
    except AgentHubError as e:
        raise SystemExit(f"demo: error: {e}")


def run(out: Path, train_games: int, test_games: int, processes: int, overrides: list[str]) -> dict[str, Any]:
    from rich.console import Console

    from agenthub.trainers.config import load_config
    from agenthub.trainers.grpo import train

    console = Console()
    start = time.monotonic()
    config = load_config(CONFIG, overrides, base={})
    model_dir = prepare(out, config, train_games, test_games, processes, console=console, stages=7)
    history = config.rollout.history

    console.rule("4/7 evaluating the untrained model on the held-out games")
    results = {"before": evaluate_modes(model_dir, out / "before", config.suite, test_games, history=history)}

    console.rule("5/7 SFT on the walkthroughs")
    rl_steps, config.model, config.steps = config.steps, str(model_dir), 0
    train(config, out / "sft", resume=(out / "sft" / "metrics.jsonl").exists())
    results["sft"] = evaluate_modes(out / "sft" / "model", out / "sft-eval", config.suite, test_games, history=history)

    console.rule(f"6/7 GRPO from the SFT model: {rl_steps} steps")
    config.model, config.sft, config.steps = str(out / "sft" / "model"), None, rl_steps
    train(config, out / "train", resume=(out / "train" / "metrics.jsonl").exists())

    console.rule("7/7 evaluating the trained model on the same held-out games")
    results["after"] = evaluate_modes(out / "train" / "model", out / "after", config.suite, test_games,
                                      history=history)

    minutes = (time.monotonic() - start) / 60
    write_demo_report(out, config.suite, results, minutes)
    for mode in MODES:
        console.print(f"held-out success ({mode}): " + " -> ".join(
            f"{results[stage][mode]['success_rate']:.0%} {label}" for stage, label in STAGES.items()))
    console.print(f"{minutes:.1f} minutes; wrote {out / 'report.html'}")
    return {**results, "minutes": minutes}


def prepare(out: Path, config: TrainConfig, train_games: int, test_games: int, processes: int, *, size: str = "tiny",
            console: Any, stages: int) -> Path:
    """Steps 1-3 of the recipe for `config.suite`: its games, the oracle's demonstrations
    (OUT/demonstrations.jsonl, which becomes `config.sft.data`) and a from-scratch model
    (OUT/model-init, kept if already there); returns the model's directory."""
    from agenthub.environments.textworld import pregenerate
    from agenthub.suites import get_suite, load_suite
    from agenthub.trainers.model_init import init_model
    from agenthub.trainers.sft import demonstrations

    if config.sft is None:
        raise AgentHubError("the recipe needs an sft section")
    out.mkdir(parents=True, exist_ok=True)
    suite = get_suite(config.suite)
    train_tasks = load_suite(config.suite, "train", train_games)
    test_tasks = load_suite(config.suite, "test", test_games)

    console.rule(f"1/{stages} generating {len(train_tasks)} train + {len(test_tasks)} test games")
    pregenerate(suite.env_id, [t.seed for t in train_tasks + test_tasks], processes=processes)

    console.rule(f"2/{stages} oracle demonstrations on the train games")
    config.sft.tasks, config.sft.data = len(train_tasks), None
    demos = demonstrations(config.sft, config.suite)
    (out / "demonstrations.jsonl").unlink(missing_ok=True)  # the writer appends: a rerun must not double them
    write_trajectories(out / "demonstrations.jsonl", demos)
    config.sft.data = str(out / "demonstrations.jsonl")

    console.rule(f"3/{stages} a {size} model from scratch")
    model_dir = out / "model-init"
    if not (model_dir / "config.json").exists():
        init_model(model_dir, size, tokenizer_texts(demos), seed=config.seed)
    console.print(json.loads((model_dir / "agenthub_model.json").read_text())["parameters"], "parameters")
    return model_dir


def tokenizer_texts(demos: list[Trajectory]) -> list[str]:
    """What a from-scratch model's tokenizer is fitted on: the demonstrations' messages
    and every admissible command they list."""
    texts = [text_of(m) for t in demos for m in t.messages()]
    return texts + [a for t in demos for turn in t.turns for a in turn.info.get("admissible_actions", [])]


def evaluate_modes(model_dir: Path, out: Path, suite: str, episodes: int, *, history: int | None = None,
                   max_new_tokens: int = 16, temperature: float = 0.0,
                   modes: tuple[str, ...] | list[str] = MODES) -> dict[str, dict[str, Any]]:
    """Evaluation on the suite's test games (greedy by default) by a policy with the
    given history window: free generation in OUT, choice mode in OUT/choice."""
    from agenthub.evaluation import evaluate
    from agenthub.trainers.model_agents import HFAgent

    results = {}
    for mode in modes:
        agent = HFAgent(f"{model_dir}?mode={mode}", max_new_tokens=max_new_tokens, history=history,
                        temperature=temperature)
        results[mode] = evaluate(f"{suite}:test", agent, out if mode == "free" else out / mode,
                                 episodes=episodes, concurrency=32)
    return results


def write_demo_report(out: Path, suite: str, results: dict[str, dict[str, Any]], minutes: float) -> None:
    from agenthub.trainers.report import add_training_curves, read_metrics

    report = Report("agenthub demo: a from-scratch model learns TextWorld")
    report.paragraph(f"Suite {suite}: held-out test games, greedy actions. Free generation writes the command; "
                     f"choice mode picks the admissible command the model finds most likely. Total time "
                     f"{minutes:.1f} minutes.")
    report.table([{"mode": mode, **{label: results[stage][mode]["success_rate"] for stage, label in STAGES.items()},
                   "episodes": results["after"][mode]["episodes"]} for mode in MODES])
    add_training_curves(report, [*read_metrics(out / "sft" / "metrics.jsonl"),
                                 *read_metrics(out / "train" / "metrics.jsonl")])
    for stage, label in STAGES.items():
        for mode in MODES:
            folder = out / FOLDERS[stage] / ("" if mode == "free" else mode)
            report.heading(f"{label[0].upper()}{label[1:]} ({mode})")
            add_eval_section(report, results[stage][mode], read_trajectories(folder / "trajectories.jsonl"))
    report.write(out / "report.html")


if __name__ == "__main__":
    main()
