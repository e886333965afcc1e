"""`agenthub eval TARGET --agent AGENT`."""

from __future__ import annotations

import argparse
import itertools
import json
from typing import Any

from agenthub.cli.arg_types import at_least, positive_seconds
from agenthub.errors import AgentHubError


def add_commands(sub: Any) -> None:
    p = sub.add_parser("eval", help="evaluate an agent on an env id or a suite NAME[:SPLIT]")
    p.add_argument("target", help="env id (e.g. tools/guess-number-v0) or suite NAME[:SPLIT]")
    p.add_argument("--agent", required=True,
                   help="random | oracle | hf:PATH | vllm:PATH | openai:BASE_URL#MODEL | MODULE:CALLABLE")
    p.add_argument("--agent-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an agent option, repeatable; VALUE is read as JSON when it parses, else as text "
                        "(openai: max_completion_tokens=512, reasoning_effort=low, temperature=null, "
                        "tool_choice=required, max_retries=5, extra_headers='{\"X-A\": \"b\"}')")
    p.add_argument("--episodes", type=at_least(1), default=None, help="tasks to play (env id: default 10; suite: all)")
    p.add_argument("--samples", type=at_least(1), default=1, help="attempts per task, for pass@k")
    p.add_argument("--seed", type=at_least(0), default=0, help="first seed, for an env id target")
    p.add_argument("--concurrency", type=at_least(1), default=4)
    p.add_argument("--timeout", type=positive_seconds, default=None, help="wall-clock budget per episode, seconds")
    p.add_argument("--ray", default=None, metavar="ADDRESS|local", help="play episodes on a Ray cluster")
    p.add_argument("--out", default=None,
                   help="output folder (default: runs/eval, or runs/eval-2, -3, ... when it already holds one)")
    p.add_argument("--overwrite", action="store_true", help="replace an evaluation already in --out")
    p.add_argument("--json", action="store_true", help="print results.json")
    p.set_defaults(func=cmd_eval)


def agent_options(pairs: list[str]) -> dict[str, Any]:
    """['KEY=VALUE', ...] -> {KEY: VALUE}: VALUE as JSON when it parses (512, 0.7, null,
    {"X-A": "b"}), else the text itself (low, required). AgentHubError names a pair
    without '=' or with an empty key."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, eq, text = pair.partition("=")
        if not eq or not key.strip():
            raise AgentHubError(f"--agent-option {pair!r} is not KEY=VALUE")
        try:
            options[key.strip()] = json.loads(text)
        except ValueError:
            options[key.strip()] = text
    return options


def cmd_eval(args: argparse.Namespace) -> int:
    from agenthub.agents import load_agent
    from agenthub.evaluation import evaluate, holds_evaluation

    if args.out is None:  # a fresh default folder, so a second run never replaces the first
        args.out = next(out for n in itertools.count(1)
                        if not holds_evaluation(out := "runs/eval" if n == 1 else f"runs/eval-{n}"))

    agent: Any = args.agent
    options = agent_options(args.agent_option)
    if options:
        try:
            agent = load_agent(args.agent, **options)
        except TypeError as e:  # a constructor that has no such keyword
            raise AgentHubError(f"agent {args.agent!r} does not take option(s) {', '.join(options)}: {e}") from None
    results = evaluate(args.target, agent, args.out, episodes=args.episodes, samples=args.samples,
                       seed=args.seed, concurrency=args.concurrency, timeout=args.timeout,
                       progress=not args.json, ray=args.ray, overwrite=args.overwrite)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        pak = ", ".join(f"pass@{k} {v:.3f}" for k, v in results["pass_at_k"].items())
        print(f"{results['target']} · {results['agent']}: success {results['success_rate']:.3f}, "
              f"return {results['mean_return']:.3f}, turns {results['mean_turns']:.1f}, {pak}, "
              f"errors {results['errors']} ({results['episodes']} episodes, {results['duration_s']:.1f} s)\n"
              f"wrote {args.out}/results.json, trajectories.jsonl, report.html")
    if results["episodes"] and results["errors"] == results["episodes"]:
        raise AgentHubError(f"every episode failed; the first: {_first_error(args.out)}")
    return 0


def _first_error(out: str) -> str:
    """The first line of the first recorded episode error in OUT/trajectories.jsonl."""
    from agenthub.types import iter_trajectories

    for trajectory in iter_trajectories(f"{out}/trajectories.jsonl"):
        if trajectory.error:
            return trajectory.error.splitlines()[0]
    return "(no error recorded)"
