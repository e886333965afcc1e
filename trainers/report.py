"""A training run's report.html: curves from metrics.jsonl and the final evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from agenthub.report import Report, add_eval_section
from agenthub.types import read_trajectories

# (metric key, plot title) of the RL curves, in the order they appear
RL_CURVES = [
    ("reward_mean", "Reward (mean over rollouts)"), ("success_rate", "Rollout success rate"),
    ("kl", "KL (k3)"), ("entropy", "Entropy of action tokens"), ("clip_fraction", "Clip fraction"),
    ("grad_norm", "Gradient norm"), ("zero_variance_share", "Zero-variance group share"),
    ("rollouts_failed", "Failed rollouts (error/timeout), left out of the loss"), ("lr", "Learning rate"),
    ("generation_tokens_per_s", "Generation tokens/s"), ("step_time", "Step time (s)"),
]


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def add_training_curves(report: Report, metrics: list[dict[str, Any]]) -> None:
    sft = [m for m in metrics if m.get("phase") == "sft"]
    rl = [m for m in metrics if m.get("phase") == "rl"]
    if sft:
        report.heading("SFT warm-start")
        report.paragraph(f"{len(sft)} optimizer steps, final loss {sft[-1]['loss']:.3f}.")
        report.figure(_curve([m["sft_step"] for m in sft], [m["loss"] for m in sft], "SFT loss", "step"))
    if rl:
        report.heading("RL")
        steps = [m["step"] for m in rl]
        for key, title in RL_CURVES:
            if any(key in m for m in rl):
                values = [float("nan") if m.get(key) is None else m[key] for m in rl]  # null: not finite
                report.figure(_curve(steps, values, title, "RL step"), height=2.6)
        evals = sorted({k for m in rl for k in m if k.startswith("eval/")})
        if evals:
            def draw(ax: Any) -> None:
                for key in evals:
                    points = [(m["step"], m[key]) for m in rl if key in m]
                    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=key)
                ax.set_ylim(0, 1.05)
                ax.set_xlabel("RL step")
                ax.set_title("Held-out success during training")
                ax.legend()
            report.figure(draw, height=2.6)


def _curve(xs: list[float], ys: list[float], title: str, xlabel: str) -> Any:
    def draw(ax: Any) -> None:
        ax.plot(xs, ys, color="#4c72b0")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
    return draw


def write_train_report(out: Path) -> None:
    report = Report(f"agenthub train: {out}")
    config = out / "config.yaml"
    if config.exists():
        report.heading("Config")
        report.table([{"setting": k, "value": v} for k, v in _flatten(yaml.safe_load(config.read_text())).items()])
    add_training_curves(report, read_metrics(out / "metrics.jsonl"))
    rollouts = sorted((out / "rollouts").glob("step-*.jsonl"))
    if rollouts:
        report.heading(f"Recent rollouts ({rollouts[-1].stem})")
        report.transcripts(read_trajectories(rollouts[-1]), per_task=2, limit=8)
    for results_path in sorted((out / "eval").glob("*/results.json")):
        results = json.loads(results_path.read_text())
        report.heading(f"Evaluation ({results_path.parent.name})")
        add_eval_section(report, results, read_trajectories(results_path.parent / "trajectories.jsonl"))
    report.write(out / "report.html")


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return flat
