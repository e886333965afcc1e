"""What a reward module is, and the few helpers every module shares.

A reward module turns a *group* of trajectories (the rollouts of one task, because some
signals are relative to the group) into one reward per turn of each trajectory. It is
the whole interface with a trainer:

    rewards = module(group)            # list[list[float]], one list per trajectory
    module.metrics                     # dict[str, float] describing that call

The trainer turns these per-turn rewards into advantages itself (group normalisation,
discount, broadcast to tokens); a module never does. Every named quantity a module used
is written onto the turn it belongs to, in `turn.reward_components`, under the
module's namespace (`"gra/gated"`, `"spa/progress"`, ...), so saved trajectories show
why each turn got its reward; `"<namespace>/total"` is the turn's reward itself.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Literal

from agenthub.errors import AgentHubError
from agenthub.types import Trajectory, Turn

Comparison = Literal[">=", ">"]


@dataclasses.dataclass
class RewardModule:
    """Base class: subclasses set `namespace` and implement `score`."""

    namespace: ClassVar[str] = "reward"
    metrics: dict[str, float] = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    def __call__(self, group: list[Trajectory]) -> list[list[float]]:
        self.metrics = {}
        rewards = self.score(group)
        for trajectory, per_turn in zip(group, rewards, strict=True):
            for turn, reward in zip(trajectory.turns, per_turn, strict=True):
                self.record(turn, "total", reward)
        return rewards

    def score(self, group: list[Trajectory]) -> list[list[float]]:
        raise NotImplementedError

    def record(self, turn: Turn, key: str, value: float) -> None:
        turn.reward_components[f"{self.namespace}/{key}"] = float(value)


def turn_value(turn: Turn, source: str) -> float:
    """A per-turn signal by name: "reward" is the env's immediate reward, any other name
    one of the turn's reward components (0.0 when the env did not emit it that turn)."""
    if source == "reward":
        return float(turn.reward)
    return float(turn.reward_components.get(source, 0.0))


def final_info(trajectory: Trajectory, key: str, default: Any = None) -> Any:
    """A key of the last turn's `info`: where envs put episode-level facts such as
    `max_reward` and `ground_truth`."""
    return trajectory.turns[-1].info.get(key, default) if trajectory.turns else default


def passes(value: float, threshold: float, comparison: Comparison) -> bool:
    """`value >= threshold` or `value > threshold`, where values within 1e-9 of the
    threshold count as equal: a sum such as 0.1 + 0.2 meets a threshold of 0.3 exactly,
    as a person reading the config would expect."""
    if comparison not in (">=", ">"):
        raise AgentHubError(f"comparison must be '>=' or '>', not {comparison!r}")
    if math.isclose(value, threshold, rel_tol=1e-9, abs_tol=1e-9):
        return comparison == ">="
    return value > threshold


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
