"""The RL learning-rate schedule, as a function of RL progress rather than of update count.

How many optimizer updates an RL step takes is only known when the step is reached: it
depends on how many sequences survived (zero-variance groups and failed rollouts are
dropped, a step may keep none) and on how they split into minibatches. A schedule sized
in advance for `steps x epochs x minibatches` updates therefore never reaches its end
(a linear decay stopped at a quarter of the LR) and its warmup stretches. Here the
schedule's clock is the RL step itself, fractional inside a step: update j of the k a
step takes runs at progress `step - 1 + j / k`, and after the step the clock reads
`step`. Whatever the update counts, warmup lasts exactly `warmup_steps` RL steps and the
LR reads the schedule's end value (0 for linear and cosine) after the last step.

The multipliers follow transformers' `get_scheduler` conventions (warmup rises linearly
from 0; the LR applied by an update is the multiplier at the progress before it).
"""

from __future__ import annotations

import math
from typing import Any, Literal

Kind = Literal["constant", "linear", "cosine"]


def lr_multiplier(kind: Kind, progress: float, warmup_steps: float, total_steps: float) -> float:
    """The LR multiplier in [0, 1] at `progress` RL steps (fractional) of `total_steps`.

    Raises ValueError on an unknown `kind`."""
    if kind == "constant":
        return progress / warmup_steps if progress < warmup_steps else 1.0
    if progress >= total_steps:  # the end value, exactly, even when warmup fills the run
        done = 1.0
    elif progress < warmup_steps:
        return progress / warmup_steps
    else:
        done = (progress - warmup_steps) / (total_steps - warmup_steps)
    if kind == "linear":
        return 1.0 - done
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * done))
    raise ValueError(f"unknown schedule {kind!r} (constant, linear, cosine)")


class StepSchedule:
    """Sets the optimizer's LR from RL progress: `at(progress)` before each update. The
    state is the progress alone, which after step s is s, so a resumed run continues
    exactly by calling `at(s)`."""

    def __init__(self, optimizer: Any, kind: Kind, warmup_steps: float, total_steps: int):
        lr_multiplier(kind, 0.0, 0.0, 1.0)  # an unknown kind fails here, not at the first update
        self.optimizer, self.kind = optimizer, kind
        self.warmup_steps, self.total_steps = float(warmup_steps), float(total_steps)
        self.base_lrs = [group.setdefault("initial_lr", group["lr"]) for group in optimizer.param_groups]
        self.progress = 0.0
        self.at(0.0)

    def at(self, progress: float) -> None:
        """Move the clock to `progress` RL steps and set every parameter group's LR."""
        self.progress = float(progress)
        factor = lr_multiplier(self.kind, self.progress, self.warmup_steps, self.total_steps)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def get_last_lr(self) -> list[float]:
        """The LRs the next update would use (the name torch's schedulers use)."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, float]:
        """What a checkpoint records (a resumed run sets the clock from its step count)."""
        return {"progress": self.progress}
