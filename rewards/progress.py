"""Stepwise Progress Attribution (SPA): dense rewards from a trained progress estimator.

Each turn is rewarded with its estimated contribution to the outcome plus a grounding
term for actions the environment could execute:

    r_t = c_t + g_t,    g_t = grounding if the action was valid else 0

with grounding 0.5 by default, as in the paper's released code. An action is invalid
when the env flagged it with one of the `invalid` reward components (by convention
`invalid_action` for a well-formed action the game cannot carry out, e.g. ALFWorld's
"Nothing happens.", and `malformed_action` for one that could not be parsed). A bonus
on every valid turn also pays for long episodes, so where returns are summed over turns
set `grounding: 0` and, to penalise invalid actions instead, compose with
`{component: invalid_action, weight: -w}`.
Train the estimator with `agenthub rewards train-progress` (see agenthub.trainers.progress_estimator).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from agenthub.loading import load_object
from agenthub.rewards.base import RewardModule, mean
from agenthub.types import Trajectory

if TYPE_CHECKING:
    from agenthub.trainers.progress_estimator import ProgressEstimator

ESTIMATOR = "agenthub.trainers.progress_estimator:ProgressEstimator"


@dataclasses.dataclass
class StepwiseProgress(RewardModule):
    """SPA rewards; `estimator` is a ProgressEstimator or the directory one was saved to.

    Records per turn `spa/progress` (c_t) and `spa/grounding` (g_t); metrics
    `spa/valid_rate` (share of valid actions) and `spa/mean_progress` (mean per-episode
    sum of contributions, which training pulled towards the mean outcome).
    """

    estimator: ProgressEstimator | str | Path
    grounding: float = 0.5
    invalid: tuple[str, ...] = ("invalid_action", "malformed_action")
    namespace: ClassVar[str] = "spa"

    def __post_init__(self) -> None:
        if isinstance(self.estimator, (str, Path)):
            # by name: the estimator is a neural network and lives with the trainer (needs torch)
            self.estimator = load_object(ESTIMATOR, "progress estimator").load(self.estimator)
        self.invalid = tuple(self.invalid)

    def score(self, group: list[Trajectory]) -> list[list[float]]:
        contributions = self.estimator.predict(group)  # type: ignore[union-attr]
        rewards, valid = [], []
        for trajectory, per_turn in zip(group, contributions):
            rewards.append([])
            for turn, progress in zip(trajectory.turns, per_turn):
                ok = all(turn.reward_components.get(name, 0.0) <= 0 for name in self.invalid)
                grounding = self.grounding if ok else 0.0
                self.record(turn, "progress", progress)
                self.record(turn, "grounding", grounding)
                rewards[-1].append(progress + grounding)
                valid.append(float(ok))
        self.metrics["spa/valid_rate"] = mean(valid)
        self.metrics["spa/mean_progress"] = mean([sum(c) for c in contributions])
        return rewards
