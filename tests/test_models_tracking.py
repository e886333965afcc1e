"""Tracking (issue 15, item 9): every tracker in `report_to` gets the same numbers as
metrics.jsonl; a named tracker that is not installed is one warning, not a failure."""

from __future__ import annotations

import importlib.util
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorboard")

from agenthub.trainers.config import load_config  # noqa: E402
from agenthub.trainers.grpo import train  # noqa: E402
from agenthub.environments.toy import SUITE  # noqa: E402
from agenthub.trainers.tracking import MetricsLog  # noqa: E402


def scalars(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def test_tensorboard_gets_every_metric_of_metrics_jsonl(micro_model, tmp_path):
    cfg = load_config(base={
        "model": str(micro_model), "suite": SUITE, "steps": 1, "eval": None,
        "sft": {"tasks": 4, "batch_size": 4},
        "rollout": {"mode": "choice", "group_size": 4, "tasks_per_step": 2, "concurrency": 8, "max_new_tokens": 8,
                    "max_context": 512}})
    assert cfg.report_to == ["tensorboard"]  # on by default
    train(cfg, tmp_path / "run", progress=False)
    logged = scalars(tmp_path / "run" / "tensorboard")
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    checked = set()
    for line in lines:
        step = line.get("step", line.get("sft_step", 0))
        for key, value in line.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "time":
                tag = f"{line.get('phase', 'rl')}/{key}"
                assert logged[tag][step] == pytest.approx(value, rel=1e-6, abs=1e-6), tag
                checked.add(tag)
    assert {"rl/reward_mean", "rl/loss", "rl/peak_memory_gb", "sft/loss"} <= checked


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_a_tracker_that_is_not_installed_is_one_warning(tmp_path, capsys):
    log = MetricsLog(tmp_path / "metrics.jsonl", ["wandb", "tensorboard"], {"seed": 0})
    log.write({"phase": "rl", "step": 1, "reward_mean": 0.5})
    log.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "report_to wandb: not installed" in err
    assert scalars(tmp_path / "tensorboard")["rl/reward_mean"] == {1: 0.5}


def test_tensorboard_false_leaves_it_out(micro_model, tmp_path):
    cfg = load_config(base={"model": str(micro_model), "suite": SUITE, "steps": 0, "eval": None,
                            "tensorboard": False})
    train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_unknown_tracker_is_refused_by_the_config():
    from agenthub.errors import AgentHubError

    with pytest.raises(AgentHubError, match=r"report_to\[0\] must be one of tensorboard, wandb, trackio"):
        load_config(base={"model": "m", "suite": "s", "report_to": ["mlflow"]})
