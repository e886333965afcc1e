"""Why does a recipe learn TextWorld well or badly? SFT-only ablations, one difference at a time.

    .venv/bin/python bench/ablation.py [--out runs/ablation] [--train-games 300] [--test-games 200]
        [--only NAME ...] [--json OUT.json] [KEY=VALUE ...]

Every variant of a suite starts from the same games, demonstrations and from-scratch
`tiny` model (`agenthub.demo.prepare`; a variant on another suite, e.g. the `-recap`
games, or on more train games gets its own), trains SFT only (`bench.recipes.run_stage`) and is
evaluated greedily on the same held-out games in free generation and choice mode. The
reference ("compact") is a first reading of the calibrated prototype's recipe
(../shared/NOTES-feasibility.md §7): one example per walkthrough step with a short prompt
(`rollout.history=2`: the goal, the last two exchanges, the admissible commands in the
observation), loss on the command only. Each other variant changes one thing (its
`overrides` on top of the reference, or the model's shape or tokenizer vocabulary, or an
evaluation setting); "product" is the demo's old recipe (whole chat, context loss 0.2), "recap" its
recipe on 300 games (trainers/configs/demo.yaml at 16 epochs), with variants of its own,
and "recap-600games" twice the games for half the epochs (the demo now takes 7 on 600).

Per variant the table shows held-out success ± its standard error sqrt(p(1-p)/n), the
per-turn accuracy at the oracle's states of the held-out games (free: the generated
command equals the walkthrough's; choice: the chosen one does), the share of free
outputs at those states that are admissible commands, and SFT minutes (training steps
only). Finished variants are kept: rerunning with the same --out only runs what is missing.
"""

from __future__ import annotations

import argparse
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recipes import run_stage, stderr  # bench/ is on sys.path when this script runs
from rich.console import Console
from rich.table import Table

from agenthub.agents.base import Context, Reply
from agenthub.agents.oracle import OracleAgent
from agenthub.demo import CONFIG, MODES, evaluate_modes, prepare, tokenizer_texts
from agenthub.errors import AgentHubError
from agenthub.types import Message, read_trajectories

REFERENCE = ["rollout.history=2", "sft.context_weight=0", "sft.epochs=8", "sft.batch_size=32", "sft.lr=3.0e-3"]
RECAP = ["suite=textworld/w2-o3-q2to4-recap", "rollout.history=0", "sft.context_weight=0.2", "sft.warmup_steps=30",
         "sft.epochs=16"]  # trainers/configs/demo.yaml's recipe when it took 300 games, on top of REFERENCE


@dataclass
class Variant:
    name: str
    what: str  # the one difference from the reference
    overrides: list[str] = field(default_factory=list)  # on top of REFERENCE
    model: dict[str, Any] = field(default_factory=dict)  # init_model overrides: its own shape or vocabulary
    evaluation: dict[str, Any] = field(default_factory=dict)  # evaluate_modes options
    trains_as: str | None = None  # reuse this variant's SFT model (evaluation-only variants)
    games: int | None = None  # SFT on this many train games instead of --train-games


VARIANTS = [
    Variant("compact", "reference: per-step examples, history=2, no context loss"),
    Variant("recap", "the demo's recipe on 300 games: recap games (each observation restates the goal, the last "
                     "commands and the admissible ones), history=0, context_weight 0.2, warmup 30, 16 epochs", RECAP),
    Variant("recap-warmup10", "the demo's recipe with 10 warmup steps", [*RECAP, "sft.warmup_steps=10"]),
    Variant("recap-ctx0", "the demo's recipe without the context loss", [*RECAP, "sft.context_weight=0"]),
    Variant("recap-6epochs", "the demo's recipe, 6 epochs", [*RECAP, "sft.epochs=6"]),
    Variant("recap-600games", "the recap recipe on 600 games, 8 epochs (as many SFT steps)",
            [*RECAP, "sft.epochs=8"], games=600),
    Variant("whole-chat", "whole-chat prompt (history=none)", ["rollout.history=null"]),
    Variant("product", "the old demo's SFT: whole chat, context_weight 0.2, 16 epochs of batch 16",
            ["rollout.history=null", "sft.context_weight=0.2", "sft.epochs=16", "sft.batch_size=16"]),
    Variant("ctx0.2", "context_weight 0.2", ["sft.context_weight=0.2"]),
    Variant("product-ctx1", "the old demo's SFT with context_weight 1.0",
            ["rollout.history=null", "sft.context_weight=1.0", "sft.epochs=16", "sft.batch_size=16"]),
    Variant("history1", "history=1", ["rollout.history=1"]),
    Variant("history4", "history=4", ["rollout.history=4"]),
    Variant("lr1e-3", "lr 1e-3", ["sft.lr=1.0e-3"]),
    Variant("epochs4", "half the epochs", ["sft.epochs=4"]),
    Variant("vocab2048", "tokenizer vocabulary 2048", model={"vocab_size": 2048}),
    Variant("recap-600games-2layers", "recap-600games with 2 layers instead of 4 (2.1M parameters, not 3.7M)",
            [*RECAP, "sft.epochs=8"], model={"num_hidden_layers": 2}, games=600),
    Variant("recap-600games-8layers", "recap-600games with 8 layers instead of 4 (6.8M parameters)",
            [*RECAP, "sft.epochs=8"], model={"num_hidden_layers": 8}, games=600),
    Variant("recap-600games-lr1e-3", "recap-600games at lr 1e-3 instead of 3e-3",
            [*RECAP, "sft.epochs=8", "sft.lr=1.0e-3"], games=600),
    Variant("recap-600games-ctx0", "recap-600games without the context loss",
            [*RECAP, "sft.epochs=8", "sft.context_weight=0"], games=600),
    Variant("recap-600games-vocab1024", "recap-600games with a 1,024-token vocabulary (the fitted one has 2,112)",
            [*RECAP, "sft.epochs=8"], model={"vocab_size": 1024}, games=600),
    Variant("tokens32", "recap-600games, max_new_tokens 32 at evaluation", [*RECAP, "sft.epochs=8"],
            evaluation={"max_new_tokens": 32}, trains_as="recap-600games", games=600),
    Variant("sampled", "recap-600games, sampling (temperature 1) at evaluation", [*RECAP, "sft.epochs=8"],
            evaluation={"temperature": 1.0}, trains_as="recap-600games", games=600),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/ablation")
    parser.add_argument("--train-games", type=int, default=300)
    parser.add_argument("--test-games", type=int, default=200)
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"variants ({', '.join(v.name for v in VARIANTS)})")
    parser.add_argument("--processes", type=int, default=2, help="game generation processes")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="applied to every variant")
    args = parser.parse_args()
    try:
        ablate(args)
    except AgentHubError as e:
        raise SystemExit(f"ablation: error: {e}")


def ablate(args: argparse.Namespace) -> None:
    from agenthub.trainers.config import load_config
    from agenthub.trainers.model_init import init_model

    console, out = Console(width=max(Console().width, 140)), Path(args.out)  # whole columns in a log file
    known = {v.name: v for v in VARIANTS}
    unknown = [n for n in args.only or [] if n not in known]
    if unknown:
        raise AgentHubError(f"unknown variant {unknown[0]!r} (variants: {', '.join(known)})")
    chosen = [known[n] for n in args.only] if args.only else VARIANTS
    base = load_config(CONFIG, [*REFERENCE, *args.overrides], base={})
    # per (suite, train games): its folder, the oracle's test states
    materials: dict[tuple[str, int], tuple[Path, list[State]]] = {}
    rows = {}
    for v in chosen:
        config = load_config(CONFIG, [*REFERENCE, *args.overrides, *v.overrides], base={})
        key = config.suite, v.games or args.train_games
        if key not in materials:  # a suite's own games' text: its own demonstrations and tokenizer
            folder = out if config.suite == base.suite else out / "suites" / config.suite.replace("/", "-")
            folder = folder if key[1] == args.train_games else folder / f"games-{key[1]}"
            prepare(folder, config, key[1], args.test_games, args.processes, console=console, stages=3)
            probes = next((p for (suite, _), (_, p) in materials.items() if suite == config.suite), None)
            materials[key] = folder, probes if probes is not None else oracle_states(config.suite, args.test_games)
        where, probes = materials[key]
        demos = read_trajectories(where / "demonstrations.jsonl")
        config.sft.data, config.sft.tasks = str(where / "demonstrations.jsonl"), len(demos)
        config.model = str(where / "model-init")
        if v.model:
            config.model = str(where / ("model-init-" + "-".join(f"{k}{x}" for k, x in sorted(v.model.items()))))
            if not (Path(config.model) / "config.json").exists():
                init_model(config.model, "tiny", tokenizer_texts(demos), seed=config.seed, **v.model)
        folder, row = out / "variants" / (v.trains_as or v.name), out / "eval" / v.name / "row.json"
        if row.exists():
            rows[v.name] = json.loads(row.read_text())
            continue
        console.rule(f"{v.name}: {v.what}")
        timing = run_stage(config, folder, steps=0)
        model = folder / "model"
        options = {"history": config.rollout.history, **v.evaluation}
        results = evaluate_modes(model, out / "eval" / v.name, config.suite, args.test_games, **options)
        turns = per_turn(model, probes, options)
        rows[v.name] = {"what": v.what, "suite": config.suite, "sft_minutes": timing["minutes"], **turns,
                        **{mode: results[mode]["success_rate"] for mode in MODES}}
        row.write_text(json.dumps(rows[v.name], indent=2))
    states = {suite: len(m[1]) for (suite, _), m in materials.items()}
    print_table(console, rows, args.test_games, states)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "suite": base.suite, "test_games": args.test_games, "reference": REFERENCE, "variants": rows,
            "oracle_states": states}, indent=2))


# -- per-turn accuracy at the oracle's states ---------------------------------------------


@dataclass
class State:
    messages: list[Message]
    info: dict[str, Any]
    turn: int
    oracle: str


class _Recorder:
    """Plays the oracle's walkthrough and records each state it acts in."""

    name = "oracle (recording)"

    def __init__(self) -> None:
        self.oracle, self.states, self.lock = OracleAgent(), [], threading.Lock()

    def act(self, messages: list[Message], ctx: Context) -> str | Message:
        action = self.oracle.act(messages, ctx)
        with self.lock:
            self.states.append(State(list(messages), dict(ctx.info), ctx.turn, str(action)))
        return action


def oracle_states(suite: str, games: int) -> list[State]:
    """Every state of the oracle's walkthroughs of the suite's first `games` test games."""
    from agenthub.evaluation import target_episodes
    from agenthub.runner import run_episodes

    recorder = _Recorder()
    run_episodes(target_episodes(f"{suite}:test", games, 1, 0), recorder, concurrency=8)
    return recorder.states


def per_turn(model: Path, states: list[State], options: dict[str, Any]) -> dict[str, float]:
    """Per-turn accuracy of the model's policy at the oracle's states (free and choice)
    and the share of its free outputs that are admissible commands. Each state is
    prompted afresh, as the policy would see it had it played the walkthrough itself."""
    from concurrent.futures import ThreadPoolExecutor

    from agenthub.factory import make as make_env
    from agenthub.trainers.model_agents import HFAgent

    tools_env = make_env(states[0].info["task_id"].split("#")[0]) if states else None  # for its tools
    figures = {}
    try:
        for mode in MODES:
            agent = HFAgent(f"{model}?mode={mode}", **{"max_new_tokens": 16, **options})

            def act(s: State) -> str:
                reply = agent.act(s.messages, Context(tools_env, s.info, s.turn))  # type: ignore[arg-type]
                return str(Reply.of(reply).message.get("content", "")).strip()

            with ThreadPoolExecutor(32) as pool:
                actions = list(pool.map(act, states))
            figures[f"turn_{mode}"] = sum(a == s.oracle for a, s in zip(actions, states)) / max(len(states), 1)
            if mode == "free":
                figures["free_admissible"] = sum(a in (s.info.get("admissible_actions") or [])
                                                 for a, s in zip(actions, states)) / max(len(states), 1)
    finally:
        if tools_env is not None:
            tools_env.close()
    return figures


def print_table(console: Console, rows: dict[str, dict[str, Any]], games: int, states: dict[str, int]) -> None:
    counts = ", ".join(f"{n} ({suite})" for suite, n in states.items())
    table = Table(title=f"SFT-only ablation: held-out success on {games} games (± s.e.), "
                        f"per-turn accuracy at the oracle's states: {counts}")
    for column in ("variant", "difference", *MODES, "turn free", "turn choice", "free admissible", "SFT min"):
        table.add_column(column, justify="left" if column in ("variant", "difference") else "right")
    for name, r in rows.items():
        table.add_row(name, r["what"], *(f"{r[m]:.1%} ± {stderr(r[m], games):.1%}" for m in MODES),
                      f"{r['turn_free']:.1%}", f"{r['turn_choice']:.1%}", f"{r['free_admissible']:.1%}",
                      f"{r['sft_minutes']:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
