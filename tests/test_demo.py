"""`make demo`'s pipeline end to end at toy size, on real TextWorld games: games,
oracle demonstrations, a from-scratch model, evaluation before and after in both modes,
SFT then GRPO, and the report. (The full-size demo is `make demo`; its figures are in
the README.)"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("textworld")

from agenthub.demo import CONFIG, FOLDERS, MODES, run  # noqa: E402
from agenthub.trainers.config import load_config  # noqa: E402
from agenthub.trainers.grpo import iter_metrics  # noqa: E402


def test_demo_runs_end_to_end_at_toy_size(tmp_path):
    result = run(tmp_path, train_games=4, test_games=2, processes=1,
                 overrides=["sft.epochs=1", "sft.batch_size=4", "steps=1", "rollout.group_size=2",
                            "rollout.tasks_per_step=1"])

    demos = (tmp_path / "demonstrations.jsonl").read_text().splitlines()
    assert len(demos) == 4 and all(json.loads(line)["success"] for line in demos)
    for stage, folder_name in FOLDERS.items():
        for mode in MODES:
            folder = tmp_path / folder_name / ("" if mode == "free" else mode)
            results = json.loads((folder / "results.json").read_text())
            assert results["episodes"] == 2
            assert results["success_rate"] == result[stage][mode]["success_rate"]
            assert results["agent"].endswith("(choice)") == (mode == "choice")
    assert {m.get("phase") for m in iter_metrics(tmp_path / "sft" / "metrics.jsonl")} == {"sft"}
    assert "rl" in {m.get("phase") for m in iter_metrics(tmp_path / "train" / "metrics.jsonl")}
    # every evaluation's policy saw what training's did: the recipe's history window or the whole chat
    windowed = load_config(CONFIG, [], base={}).rollout.history is not None
    for folder in FOLDERS.values():
        for line in (tmp_path / folder / "trajectories.jsonl").read_text().splitlines():
            assert all((turn["token_layout"] == "window") == windowed for turn in json.loads(line)["turns"])
    report = (tmp_path / "report.html").read_text()
    assert "textworld/w2-o3-q2to4" in report and "After SFT + GRPO (choice)" in report
    assert "After SFT (free)" in report
