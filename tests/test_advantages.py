"""Advantage estimators against hand-computed values."""

import math

import pytest

from agenthub.trainers.advantages import (baseline_normalize, discounted_returns, is_zero_variance,
                                          trajectory_advantages, turn_advantages)


def approx(values):
    return pytest.approx(values, abs=1e-5)


def test_grpo_is_a_z_score_with_bessel_std():
    # mean 0.5, std = sqrt(4 * 0.25 / 3) = 0.57735
    assert baseline_normalize([1, 0, 0, 1], "grpo") == approx([0.866025, -0.866025, -0.866025, 0.866025])


def test_dr_grpo_only_subtracts_the_mean():
    assert baseline_normalize([1, 0, 0, 1], "dr_grpo") == approx([0.5, -0.5, -0.5, 0.5])
    assert baseline_normalize([3, 1], "dr_grpo") == approx([1, -1])


def test_rloo_subtracts_the_mean_of_the_others():
    # 1 - mean(0, 0, 1) = 2/3 ; 0 - mean(1, 0, 1) = -2/3
    assert baseline_normalize([1, 0, 0, 1], "rloo") == approx([2 / 3, -2 / 3, -2 / 3, 2 / 3])
    assert baseline_normalize([4, 1, 1], "rloo") == approx([3, -1.5, -1.5])
    assert baseline_normalize([5], "rloo") == [0.0]


def test_trajectory_level_broadcasts_the_total_to_every_turn():
    # totals 1 and 0 -> GRPO +-1/sqrt(2)
    a = trajectory_advantages([[0, 1], [0, 0, 0]], "grpo")
    assert a[0] == approx([math.sqrt(0.5)] * 2) and a[1] == approx([-math.sqrt(0.5)] * 3)


def test_discounted_returns():
    assert discounted_returns([1, 0, 2], 0.5) == approx([1.5, 1.0, 2.0])
    assert discounted_returns([1, 1], 1.0) == approx([2, 1])


def test_turn_level_joint_pool_then_discount():
    # pool mean 2 -> normalised [[-1, 0], [1]]; gamma 0.5 -> [[-1 + 0.5 * 0, 0], [1]]
    assert turn_advantages([[1, 2], [3]], "dr_grpo", "joint", gamma=0.5) == [approx([-1, 0]), approx([1])]


def test_turn_level_per_turn_index_compares_same_steps():
    # index 0: [1, 3] -> [-1, 1]; index 1: [2, 4] -> [-1, 1]; gamma 1 returns
    assert turn_advantages([[1, 2], [3, 4]], "dr_grpo", "per_turn_index") == [approx([-2, -1]), approx([2, 1])]


def test_turn_level_separate_pools_last_turns_apart():
    # last turns [10, 0] -> [5, -5]; earlier turns [1, 2, 3] -> [-1, 0, 1]
    a = turn_advantages([[1, 2, 10], [3, 0]], "dr_grpo", "separate")
    assert a == [approx([4, 5, 5]), approx([-4, -5])]


def test_turn_level_grpo_within_pools():
    a = turn_advantages([[0, 1], [0, 0]], "grpo", "per_turn_index")
    # index 0: [0, 0] -> [0, 0]; index 1: [1, 0] -> +-0.7071
    assert a == [approx([0.707107, 0.707107]), approx([-0.707107, -0.707107])]


def test_zero_variance_groups_are_detected():
    assert is_zero_variance(trajectory_advantages([[0, 1], [1], [0, 0, 1]], "grpo"))
    assert is_zero_variance(turn_advantages([[0.5], [0.5]], "rloo"))
    assert not is_zero_variance(trajectory_advantages([[1], [0]], "rloo"))


def test_unknown_names_fail_clearly():
    with pytest.raises(ValueError, match="estimator"):
        baseline_normalize([1, 2], "ppo")
    with pytest.raises(ValueError, match="pooling"):
        turn_advantages([[1]], "grpo", "diagonal")
