"""`make demo`'s pipeline end to end at toy size, on real TextWorld games: games,
oracle demonstrations, a from-scratch model, evaluation before and after in both modes,
SFT then GRPO, and the report. (The full-size demo is `make demo`; its figures are in
the README.)"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("textworld")

from agenthub.demo import MODES, run  # noqa: E402
from agenthub.trainers.grpo import iter_metrics  # noqa: E402


def test_demo_runs_end_to_end_at_toy_size(tmp_path):
    result = run(tmp_path, train_games=4, test_games=2, processes=1,
                 overrides=["sft.epochs=1", "sft.batch_size=4", "steps=1", "rollout.group_size=2",
                            "rollout.tasks_per_step=1"])

    demos = (tmp_path / "demonstrations.jsonl").read_text().splitlines()
    assert len(demos) == 4 and all(json.loads(line)["success"] for line in demos)
    for stage in ("before", "after"):
        for mode in MODES:
            folder = tmp_path / stage / ("" if mode == "free" else mode)
            results = json.loads((folder / "results.json").read_text())
            assert results["episodes"] == 2
            assert results["success_rate"] == result[stage][mode]["success_rate"]
            assert results["agent"].endswith("(choice)") == (mode == "choice")
    phases = [m.get("phase") for m in iter_metrics(tmp_path / "train" / "metrics.jsonl")]
    assert "sft" in phases and "rl" in phases
    report = (tmp_path / "report.html").read_text()
    assert "textworld/w2-o3-q2to4" in report and "After training (choice)" in report
