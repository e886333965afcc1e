"""Reward modules: per-turn rewards for multi-turn trajectories.

A module is called on a group of trajectories (the rollouts of one task) and returns
one reward per turn for each; see base.py for the contract with trainers.

- `TurnLevel`: the env's dense per-turn rewards, optionally on the outcome's scale;
  `Outcome`: the sparse outcome on the last turn (turn_level.py).
- `GatedAccumulation`: G-RA, immediate rewards gated on the outcome; D-RA baseline
  with `gated=False` (gated.py).
- `StepwiseProgress`: SPA, a trained estimator's per-turn contributions to the outcome
  plus a grounding term (progress.py; the estimator is agenthub.trainers.progress_estimator).
- `InformationGain`: IGPO, the turn's gain in the policy's belief in the ground-truth
  answer (info_gain.py; its model-backed scorer is `agenthub.trainers.answer_scorer`).
- `Compose`: weighted sums of modules and components (compose.py).
- `from_config`: any of these from a training config's plain dict (config.py).

Offline (offline.py, and `agenthub rewards score | train-progress`): re-score saved
trajectories group by group and compare modules in an HTML report.
"""

from agenthub.rewards.base import RewardModule
from agenthub.rewards.compose import Compose
from agenthub.rewards.config import from_config
from agenthub.rewards.gated import GatedAccumulation
from agenthub.rewards.info_gain import AnswerScorer, InformationGain
from agenthub.rewards.progress import StepwiseProgress
from agenthub.rewards.turn_level import Outcome, TurnLevel

__all__ = ["AnswerScorer", "Compose", "GatedAccumulation", "InformationGain", "Outcome",
           "RewardModule", "StepwiseProgress", "TurnLevel", "from_config"]
