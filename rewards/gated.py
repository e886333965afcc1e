"""Gated Reward Accumulation (G-RA), from "Stabilizing Long-term Multi-turn RL with
Gated Rewards", and its ungated baseline, direct reward accumulation (D-RA).

Dense immediate rewards that are not aligned with the long-term goal get hacked: an
agent learns to collect them and forgets the task. G-RA keeps them, but lets a
lower-priority reward count only in episodes where every higher-priority reward met its
threshold. In the two-level form, with the outcome on top:

    r~_t = r_t   if outcome >= threshold   else 0
    R    = outcome + sum_t r~_t            (the outcome is paid on the last turn)

The general form is a priority-ordered list of levels, each a per-turn signal
("outcome", "reward" = the env's immediate reward, or any reward-component name) with a
threshold on its episode total; level k counts when levels 0..k-1 all passed theirs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from agenthub.errors import AgentHubError
from agenthub.rewards.base import Comparison, RewardModule, mean, passes, turn_value
from agenthub.types import Trajectory


@dataclasses.dataclass
class GatedAccumulation(RewardModule):
    """G-RA (or, with `gated=False`, the D-RA baseline: every level always counts).

    threshold, immediate: the two-level form, outcome gating the per-turn signal
        `immediate` ("reward" or a component name).
    levels: the general form, highest priority first, overriding the two above:
        [{"source": "outcome", "threshold": 1.0}, {"source": "score", "threshold": 0.5},
         {"source": "reward"}] (the last level needs no threshold).
    comparison: ">=" (default) or ">", the gate test; values within 1e-9 of a threshold
        count as equal to it.

    Records per turn `gra/gated` (the lower levels' rewards after gating) and
    `gra/gate_open` (1.0 when every gate opened); metric `gra/gate_open_rate` is the
    share of episodes in which every gate opened (with more than two levels,
    `gra/gate_open_rate/<source>` says it per gated level).
    """

    threshold: float = 1.0
    immediate: str = "reward"
    levels: list[dict[str, Any]] | None = None
    comparison: Comparison = ">="
    gated: bool = True

    @property
    def namespace(self) -> str:  # type: ignore[override]
        return "gra" if self.gated else "dra"

    def __post_init__(self) -> None:
        passes(0.0, 0.0, self.comparison)  # validates the comparison
        self._levels = _parse_levels(self.levels) if self.levels is not None else [
            ("outcome", float(self.threshold)), (self.immediate, None)]

    def score(self, group: list[Trajectory]) -> list[list[float]]:
        opened_per_level = [0] * (len(self._levels) - 1)
        rewards = []
        for trajectory in group:
            n = len(trajectory.turns)
            total, lower = [0.0] * n, [0.0] * n
            is_open = True
            for k, (source, threshold) in enumerate(self._levels):
                values = _level_values(trajectory, source)
                if is_open or not self.gated:
                    total = [a + b for a, b in zip(total, values)]
                    if k > 0:
                        lower = [a + b for a, b in zip(lower, values)]
                if threshold is not None:
                    level_total = trajectory.outcome if source == "outcome" else sum(values)
                    is_open = is_open and passes(level_total, threshold, self.comparison)
                    opened_per_level[k] += is_open
            if self.gated:
                for turn, value in zip(trajectory.turns, lower):
                    self.record(turn, "gated", value)
                    self.record(turn, "gate_open", float(is_open))
            rewards.append(total)
        ns = self.namespace
        if self.gated and group:
            self.metrics[f"{ns}/gate_open_rate"] = opened_per_level[-1] / len(group)
            if len(self._levels) > 2:
                for (source, _), opened in zip(self._levels[1:], opened_per_level):
                    self.metrics[f"{ns}/gate_open_rate/{source}"] = opened / len(group)
        self.metrics[f"{ns}/mean_return"] = mean([sum(r) for r in rewards])
        return rewards


def _level_values(trajectory: Trajectory, source: str) -> list[float]:
    """The level's reward on each turn; the outcome is paid on the last turn."""
    if source == "outcome":
        return [0.0] * (len(trajectory.turns) - 1) + [trajectory.outcome] if trajectory.turns else []
    return [turn_value(turn, source) for turn in trajectory.turns]


def _parse_levels(levels: list[dict[str, Any]]) -> list[tuple[str, float | None]]:
    if not isinstance(levels, list) or len(levels) < 2:
        raise AgentHubError("G-RA levels must be a list of at least two {source, threshold} entries")
    parsed: list[tuple[str, float | None]] = []
    for i, level in enumerate(levels):
        if not isinstance(level, dict) or "source" not in level or set(level) - {"source", "threshold"}:
            raise AgentHubError(f"G-RA level {i} must be {{source: NAME, threshold: NUMBER}}, got {level!r}")
        last = i == len(levels) - 1
        if not last and "threshold" not in level:
            raise AgentHubError(f"G-RA level {i} ({level['source']}) needs a threshold: it gates the levels below it")
        parsed.append((str(level["source"]), None if last else float(level["threshold"])))
    return parsed
