"""Where a run's metrics go: `metrics.jsonl` always, plus the trackers named in
`report_to` (`tensorboard`, `wandb`, `trackio`) that are installed.

Every tracker gets the same numbers as `metrics.jsonl` (all but the line's wall-clock
`time`, which trackers stamp themselves), one call per line, named
`PHASE/KEY` (`rl/reward_mean`, `sft/loss`, `eval/...`) and indexed by the line's `step`
(RL) or `sft_step`. A tracker that is named but not installed is skipped with one
warning line on stderr, so a config that names wandb still runs where wandb is absent.
wandb and trackio runs are named after the run directory and carry the config; their
own settings (WANDB_MODE=offline, WANDB_PROJECT, TRACKIO_PROJECT, ...) apply.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Protocol, Sequence

TRACKERS = ("tensorboard", "wandb", "trackio")


class Tracker(Protocol):
    def log(self, scalars: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class _TensorBoard:
    def __init__(self, run_dir: Path, config: dict[str, Any]):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, scalars: dict[str, float], step: int) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class _WandbLike:
    """wandb and trackio share this API (`init`, `log`, `finish`)."""

    def __init__(self, module_name: str, run_dir: Path, config: dict[str, Any]):
        import importlib

        self.module = importlib.import_module(module_name)
        project = os.environ.get(f"{module_name.upper()}_PROJECT", "agenthub")
        options: dict[str, Any] = {"dir": str(run_dir)} if module_name == "wandb" else {}
        self.run = self.module.init(project=project, name=run_dir.resolve().name, config=config, **options)

    def log(self, scalars: dict[str, float], step: int) -> None:
        # phases restart their step counts, and wandb requires increasing steps: the step is a metric
        self.module.log({**scalars, "step": step})

    def close(self) -> None:
        self.module.finish()


def open_trackers(report_to: list[str], run_dir: Path, config: dict[str, Any]) -> list[Tracker]:
    """The trackers in `report_to` that can be imported here (unknown names are an error
    the config already refused)."""
    trackers: list[Tracker] = []
    for name in report_to:
        try:
            trackers.append(_TensorBoard(run_dir, config) if name == "tensorboard"
                            else _WandbLike(name, run_dir, config))
        except ImportError as e:
            print(f"agenthub: report_to {name}: not installed, not logging there ({e})", file=sys.stderr)
    return trackers


class MetricsLog:
    """metrics.jsonl (one JSON object per line, appended and flushed) and the trackers."""

    def __init__(self, path: Path, report_to: Sequence[str] = (), config: dict[str, Any] | None = None):
        self.file = open(path, "a", encoding="utf-8")
        self.trackers = open_trackers(list(report_to), path.parent, config or {})

    def write(self, metrics: dict[str, Any]) -> None:
        """Append one line; a NaN/inf value is written as null, so the line stays valid JSON."""
        metrics = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()}
        self.file.write(json.dumps({"time": time.time(), **metrics}) + "\n")
        self.file.flush()
        if self.trackers:
            phase = metrics.get("phase", "rl")
            step = metrics.get("step", metrics.get("sft_step", 0))
            scalars = {f"{phase}/{k}": float(v) for k, v in metrics.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)}
            for tracker in self.trackers:
                tracker.log(scalars, step)

    def close(self) -> None:
        self.file.close()
        for tracker in self.trackers:
            tracker.close()
