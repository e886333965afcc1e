"""Weighted sums of reward modules and named reward components.

    Compose([(1.0, GatedAccumulation()), (0.5, "spa/progress"), (-0.1, "malformed_action"),
             (0.0, StepwiseProgress("runs/spa"))])

A module term adds its per-turn rewards; a component term adds a per-turn component by
name: one the env emitted (`score`, `invalid_action`, ...) or one a module of this
Compose recorded (modules run first, in order). A term of weight 0 is computed and
logged but adds nothing, which is how a signal is watched before it is trusted.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from agenthub.errors import AgentHubError
from agenthub.rewards.base import RewardModule, mean, turn_value
from agenthub.types import Trajectory

Term = tuple[float, "RewardModule | str"]


@dataclasses.dataclass
class Compose(RewardModule):
    """sum_i w_i * term_i per turn. Metrics: every module's own, plus `compose/<label>`,
    the mean per-episode total of each term before weighting (label: the module's
    namespace or the component's name)."""

    terms: list[Term]
    namespace: ClassVar[str] = "compose"

    def __post_init__(self) -> None:
        labels = [self._label(term) for _, term in self.terms]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise AgentHubError(f"compose has two terms named {duplicates[0]!r}")
        if not self.terms:
            raise AgentHubError("compose needs at least one term")

    @staticmethod
    def _label(term: RewardModule | str) -> str:
        return term if isinstance(term, str) else term.namespace

    def score(self, group: list[Trajectory]) -> list[list[float]]:
        values: dict[str, list[list[float]]] = {}
        for _, term in self.terms:
            if isinstance(term, RewardModule):
                values[term.namespace] = term(group)
                self.metrics.update(term.metrics)
        for _, term in self.terms:
            if isinstance(term, str):
                values[term] = [[turn_value(turn, term) for turn in t.turns] for t in group]
        rewards = [[0.0] * len(t.turns) for t in group]
        for weight, term in self.terms:
            label = self._label(term)
            self.metrics[f"compose/{label}"] = mean([sum(per_turn) for per_turn in values[label]])
            if weight == 0:
                continue
            for total, per_turn in zip(rewards, values[label]):
                for i, value in enumerate(per_turn):
                    total[i] += weight * value
        return rewards
