"""Advantages: from a group's per-turn rewards to one advantage per turn.

A group is the G rollouts of one task. Every estimator here compares rollouts of the
same task with each other instead of learning a value function:

- GRPO: z-score, (r - mean) / (std + eps), std with Bessel's correction as in TRL/verl;
- Dr.GRPO: r - mean (no std, which over-weights easy and hard tasks; the matching
  constant-length loss normalisation is in `losses`);
- RLOO: r - mean of the *other* rollouts (leave-one-out, an unbiased baseline).

Trajectory level (the default): a rollout's reward is the sum of its per-turn rewards,
and its advantage goes to every turn. Turn level (for per-turn rewards: G-RA, SPA,
information gain): rewards are normalised within pools, then each turn gets the
discounted sum of the normalised rewards from that turn on (gamma), which the trainer
broadcasts to the turn's tokens. Pools:

- joint: all turns of all rollouts together (as in IGPO);
- separate: last turns (which carry the outcome) and earlier turns as two pools, so the
  outcome's scale does not swamp the dense rewards;
- per_turn_index: turn t of every rollout together (rollouts compared step by step).

A group whose advantages are all zero teaches nothing; `is_zero_variance` lets the
trainer drop it and count it.
"""

from __future__ import annotations

import math
from typing import Literal

Estimator = Literal["grpo", "dr_grpo", "rloo"]
Pooling = Literal["joint", "separate", "per_turn_index"]
EPS = 1e-6


def baseline_normalize(values: list[float], estimator: Estimator) -> list[float]:
    """The estimator's advantages for one pool of comparable rewards."""
    n = len(values)
    if n == 0:
        return []
    mean = sum(values) / n
    if estimator == "dr_grpo":
        return [v - mean for v in values]
    if estimator == "rloo":
        if n == 1:
            return [0.0]
        return [v - (mean * n - v) / (n - 1) for v in values]
    if estimator == "grpo":
        if n == 1:
            return [0.0]
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        return [(v - mean) / (std + EPS) for v in values]
    raise ValueError(f"unknown estimator {estimator!r} (grpo, dr_grpo, rloo)")


def discounted_returns(rewards: list[float], gamma: float) -> list[float]:
    """G_t = r_t + gamma * G_{t+1}."""
    out, running = [0.0] * len(rewards), 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def trajectory_advantages(rewards: list[list[float]], estimator: Estimator) -> list[list[float]]:
    """Each rollout's total reward, normalised across the group, on every one of its turns."""
    totals = baseline_normalize([sum(r) for r in rewards], estimator)
    return [[a] * len(r) for a, r in zip(totals, rewards)]


def turn_advantages(rewards: list[list[float]], estimator: Estimator, pooling: Pooling = "joint",
                    gamma: float = 1.0) -> list[list[float]]:
    """Per-turn rewards -> per-turn advantages: normalise within pools, then discount."""
    pools: dict[object, list[tuple[int, int]]] = {}
    for i, per_turn in enumerate(rewards):
        for t in range(len(per_turn)):
            if pooling == "joint":
                key: object = 0
            elif pooling == "separate":
                key = t == len(per_turn) - 1
            elif pooling == "per_turn_index":
                key = t
            else:
                raise ValueError(f"unknown pooling {pooling!r} (joint, separate, per_turn_index)")
            pools.setdefault(key, []).append((i, t))
    normalized = [[0.0] * len(r) for r in rewards]
    for members in pools.values():
        for (i, t), a in zip(members, baseline_normalize([rewards[i][t] for i, t in members], estimator)):
            normalized[i][t] = a
    return [discounted_returns(r, gamma) for r in normalized]


def is_zero_variance(advantages: list[list[float]]) -> bool:
    return all(abs(a) < EPS for per_turn in advantages for a in per_turn)
