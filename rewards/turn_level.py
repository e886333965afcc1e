"""Turn-level (dense) rewards, and the sparse outcome-only reward they are compared with.

`TurnLevel` passes the env's per-turn reward through, optionally with the scaling of
"A Practitioner's Guide to Multi-turn Agentic RL": dense rewards are put on the scale of
the outcome, so that a won episode's dense rewards sum to exactly 1 and a lost one earns
its share of the maximum attainable total. Without that scaling, an agent can collect
more dense reward by wandering through a long lost episode than by winning quickly.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from agenthub.errors import AgentHubError
from agenthub.rewards.base import RewardModule, final_info, mean, turn_value
from agenthub.types import Trajectory, Turn


@dataclasses.dataclass
class TurnLevel(RewardModule):
    """The env's immediate reward on each turn.

    components: sum these reward components instead of `turn.reward` (e.g. ["score"]
        to leave penalties out of the scaled signal).
    scale: "none", or "practitioner": a won episode's rewards are divided by their sum
        (so they sum to 1; if that sum is not positive, the last turn makes up the
        difference), a lost one's by the maximum attainable total, the last turn's
        `info["max_reward"]`. Where the env does not give it, the largest total in the
        group stands in for it, and metric `turn/max_reward_known_rate` says how often.
    """

    components: list[str] | None = None
    scale: Literal["none", "practitioner"] = "none"
    namespace: ClassVar[str] = "turn"

    def __post_init__(self) -> None:
        if self.scale not in ("none", "practitioner"):
            raise AgentHubError(f"turn-level scale must be 'none' or 'practitioner', not {self.scale!r}")

    def score(self, group: list[Trajectory]) -> list[list[float]]:
        dense = [[self._dense(turn) for turn in t.turns] for t in group]
        for trajectory, values in zip(group, dense):
            for turn, value in zip(trajectory.turns, values):
                self.record(turn, "dense", value)
        if self.scale == "none":
            rewards = dense
        else:
            rewards = self._practitioner(group, dense)
        self.metrics["turn/mean_return"] = mean([sum(r) for r in rewards])
        return rewards

    def _dense(self, turn: Turn) -> float:
        if self.components is None:
            return turn_value(turn, "reward")
        return sum(turn_value(turn, name) for name in self.components)

    def _practitioner(self, group: list[Trajectory], dense: list[list[float]]) -> list[list[float]]:
        group_best = max((sum(values) for values in dense), default=0.0)
        known = 0
        rewards = []
        for trajectory, values in zip(group, dense):
            total = sum(values)
            max_reward = final_info(trajectory, "max_reward")
            known += max_reward is not None
            if not values:
                rewards.append([])
            elif trajectory.success and total > 0:
                rewards.append([v / total for v in values])
            elif trajectory.success:
                rewards.append(values[:-1] + [values[-1] + 1.0 - total])
            else:
                divisor = float(max_reward) if max_reward is not None else group_best
                rewards.append([v / divisor for v in values] if divisor > 0 else list(values))
        self.metrics["turn/max_reward_known_rate"] = known / len(group) if group else 0.0
        return rewards


@dataclasses.dataclass
class Outcome(RewardModule):
    """Sparse reward: the episode's outcome on its last turn, 0 on every other turn."""

    namespace: ClassVar[str] = "outcome"

    def score(self, group: list[Trajectory]) -> list[list[float]]:
        rewards = [[0.0] * (len(t.turns) - 1) + [t.outcome] if t.turns else [] for t in group]
        self.metrics["outcome/mean"] = mean([t.outcome for t in group])
        return rewards
