"""Overlapped rollouts still learn (issue 19 item 1): with `rollout.max_staleness` 1, each
step trains on rollouts a version behind, corrected by truncated importance sampling
against their behaviour log-probabilities, and RL still takes the untrained model over
the bar of tests/test_train_learning.py (same env, model and settings)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from test_train_learning import rl_config, untrained  # noqa: E402,F401  (the fixture, reused)

from agenthub.trainers.grpo import iter_metrics, train  # noqa: E402


def test_rl_with_one_step_overlap_raises_success_from_an_untrained_model(untrained, tmp_path, monkeypatch):
    monkeypatch.setattr("agenthub.trainers.report.write_train_report", lambda out: None)  # matplotlib: not under test
    model, before = untrained
    assert before < 0.3
    results = train(rl_config(model, **{"rollout.max_staleness": 1, "loss.tis_cap": 2.0}), tmp_path / "run",
                    progress=False)
    assert results["choice"]["success_rate"] > 0.8, results["choice"]["success_rate"]
    steps = [m for m in iter_metrics(tmp_path / "run" / "metrics.jsonl") if m.get("phase") == "rl"]
    assert sum(m["success_rate"] for m in steps[:10]) / 10 < 0.3
    assert sum(m["success_rate"] for m in steps[-10:]) / 10 > 0.8
    # it did train off-policy, and never on anything older than one version
    assert max(m["staleness_max"] for m in steps) == 1
    assert sum(m["staleness_mean"] for m in steps) / len(steps) > 0.5
