"""`make demo`: the main job on an embedded default.

Until the trainer lands this evaluates the random and the oracle agent on the reference
env's test split and writes one report comparing them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agenthub.evaluation import evaluate
from agenthub.report import Report, add_eval_section
from agenthub.types import read_trajectories


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m agenthub.demo")
    parser.add_argument("--out", default="runs/demo")
    args = parser.parse_args(argv)
    out = Path(args.out)
    report = Report("agenthub demo")
    for label, agent in (("before", "random"), ("after", "oracle")):
        results = evaluate("tools/guess-number:test", agent, out / label, episodes=50)
        report.heading(f"{label}: {agent} agent")
        add_eval_section(report, results, read_trajectories(out / label / "trajectories.jsonl"))
    report.write(out / "report.html")
    print(f"wrote {out / 'report.html'}")


if __name__ == "__main__":
    main()
