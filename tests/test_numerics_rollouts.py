"""Failed rollouts and non-finite rewards never teach the policy (issue 15, items 8 and 11b).

A real env, registered here, whose infrastructure fails on chosen episodes: it crashes
(raises) or hangs (blocks until closed, as a stuck container does) on its second turn,
after the policy has already produced tokens, or reports a NaN/inf outcome. Episodes
run one at a time, so the n-th episode made is the n-th of the step and each group's
make-up is known. Checked: failed episodes leave the loss and their group's baseline
(a group left with one rollout is dropped), they are counted per step, a run stops
with one line after `rollout.max_failed_steps` steps in which most episodes failed,
and a non-finite reward is dropped and counted and never reaches the checkpoint.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from typing import Any, ClassVar

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from safetensors.torch import load_file  # noqa: E402

from agenthub.env import Env  # noqa: E402
from agenthub.errors import AgentHubError  # noqa: E402
from agenthub.registry import register  # noqa: E402
from agenthub.rewards import from_config  # noqa: E402
from agenthub.runner import Episode, run_episodes  # noqa: E402
from agenthub.suites import register_suite  # noqa: E402
from agenthub.trainers.advantages import trajectory_advantages  # noqa: E402
from agenthub.trainers.batch import trajectory_sequence  # noqa: E402
from agenthub.trainers.checkpoint import load_model  # noqa: E402
from agenthub.trainers.config import load_config  # noqa: E402
from agenthub.trainers.engine import HFEngine  # noqa: E402
from agenthub.trainers.grpo import score_groups, train  # noqa: E402
from agenthub.trainers.model_init import corpus_from_envs, init_model  # noqa: E402
from agenthub.trainers.policy import PolicyAgent  # noqa: E402
from agenthub.environments.toy import ENV_ID as TOY_ENV_ID  # noqa: E402
from agenthub.environments.toy import register_toy_env  # noqa: E402
from agenthub.types import Trajectory, Turn  # noqa: E402

ENV_ID, SUITE = "numerics/flaky-v0", "numerics/flaky"
HANG_TIMEOUT = 3.0  # rollout.timeout: a hung episode is abandoned after this


class FlakyEnv(Env):
    """Two commands, `go on` and `stop`. The n-th env made plays MODES[n % len(MODES)]:
    `win` / `lose` end on the first turn with outcome 1 / 0; `nan`, `inf`, `-inf` end
    there with that outcome; `crash` and `hang` answer the first turn and then raise /
    block (until closed) on the second."""

    version = "0"
    modes: ClassVar[list[str]] = ["win"]
    made: ClassVar[Any] = itertools.count()

    def __init__(self) -> None:
        self.mode = self.modes[next(self.made) % len(self.modes)]
        self.closed = threading.Event()
        self.turn = 0

    @classmethod
    def play(cls, modes: list[str]) -> None:
        cls.modes, cls.made = modes, itertools.count()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.turn = 0
        return [{"role": "user", "content": "Go on or stop."}], self._info()

    def step(self, action):  # type: ignore[override]
        self.turn += 1
        if self.mode in ("crash", "hang") and self.turn == 1:
            return [{"role": "user", "content": "The door is stuck."}], 0.0, False, False, self._info()
        if self.mode == "crash":
            raise RuntimeError("simulated env crash")
        if self.mode == "hang":
            self.closed.wait(60)
            raise RuntimeError("closed while hung")
        outcome = {"win": 1.0, "lose": 0.0}.get(self.mode)
        if outcome is None:
            outcome = float(self.mode)  # nan, inf, -inf
        return [{"role": "user", "content": "Done."}], 0.0, True, False, {
            **self._info(), "success": outcome == 1.0, "outcome": outcome}

    def close(self) -> None:
        self.closed.set()

    def _info(self) -> dict[str, Any]:
        return {"admissible_actions": ["go on", "stop"]}


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    register_toy_env()
    register(ENV_ID, FlakyEnv, max_turns=4, description="test env whose infrastructure fails on purpose")
    register_suite(SUITE, ENV_ID, train=100, test=10)
    return init_model(tmp_path_factory.mktemp("model") / "micro", "tiny", corpus_from_envs([TOY_ENV_ID], 10),
                      hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, vocab_size=300)


def config(model, **overrides):
    base = {"model": str(model), "suite": SUITE, "steps": 2, "tensorboard": False, "eval": None,
            "rollout": {"mode": "choice", "group_size": 4, "tasks_per_step": 2, "concurrency": 1,
                        "max_new_tokens": 8, "max_context": 512, "timeout": HANG_TIMEOUT},
            "optim": {"lr": 1e-3}}
    return load_config(base=base, overrides=overrides)


def rl_metrics(run):
    return [m for m in map(strict_json, (run / "metrics.jsonl").read_text().splitlines()) if m.get("phase") == "rl"]


def strict_json(line):
    def refuse(constant):
        raise ValueError(f"{constant} in metrics.jsonl")
    return json.loads(line, parse_constant=refuse)


def assert_finite_checkpoint(run, step):
    weights = load_file(run / "checkpoints" / f"step-{step:06d}" / "model.safetensors")
    assert weights and all(bool(torch.isfinite(w).all()) for w in weights.values())


# --- 15.8: failed rollouts are not failures of the policy -------------------------------------

def test_failed_episodes_leave_the_loss_and_the_baseline(micro):
    model, tokenizer = load_model(micro, torch.device("cpu"))
    agent = PolicyAgent(HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id), tokenizer, mode="choice",
                        temperature=1.0)
    FlakyEnv.play(["win", "crash", "lose", "hang", "win", "crash", "hang", "crash", "lose", "crash", "nan", "win"])
    trajectories = run_episodes([Episode(ENV_ID, 0, k) for k in range(12)], agent, concurrency=1,
                                timeout=HANG_TIMEOUT)
    assert [t.stop_reason for t in trajectories] == [
        "terminated", "error", "terminated", "timeout", "terminated", "error", "timeout", "error",
        "terminated", "error", "terminated", "terminated"], [t.error for t in trajectories]
    failed = [t for t in trajectories if t.stop_reason in ("error", "timeout")]
    assert all(t.turns and t.turns[0].token_ids for t in failed)  # they had tokens the loss could have taken
    groups = [trajectories[0:4], trajectories[4:8], trajectories[8:12]]
    scored = score_groups(config(micro), from_config("outcome"), groups)
    # group 1: win, lose kept; group 2: win alone -> dropped; group 3: nan out, lose/win kept
    assert (scored.rollouts_failed, scored.groups_dropped, scored.rewards_nonfinite) == (6, 1, 1)
    kept = [trajectories[0], trajectories[2], trajectories[8], trajectories[11]]
    assert [s.ids for s in scored.sequences] == [trajectory_sequence(t, [0.0]).ids for t in kept]
    # the baseline is the kept rollouts' alone: [1, 0] -> +-0.7071 (with the failed ones'
    # zeros in it, the win would get +1.5 and the loss -0.5)
    expected = trajectory_advantages([[1.0], [0.0]], "grpo")
    for sequence, advantage in zip(scored.sequences, [expected[0], expected[1], expected[1], expected[0]]):
        assert [a for a, m in zip(sequence.advantages, sequence.mask) if m] == pytest.approx(
            [advantage[0]] * sum(sequence.mask))
    assert scored.returns == [1.0, 0.0, 0.0, 1.0]


def test_a_run_counts_failed_episodes_per_step_and_goes_on_when_most_did_not_fail(micro, tmp_path):
    # 3 of 8 fail in each step (a crash and a hang in one group, a crash in the other)
    FlakyEnv.play(["win", "crash", "lose", "hang", "lose", "win", "crash", "win"])
    train(config(micro, **{"rollout.max_failed_steps": 1, "optim.schedule": "linear", "optim.warmup_steps": 1}),
          tmp_path / "run", progress=False)
    rl = rl_metrics(tmp_path / "run")
    assert [m["rollouts_failed"] for m in rl] == [3, 3]
    assert [m["lr"] for m in rl] == [1e-3, 0.0]  # warmed up after step 1, at its end after the last
    assert [m["sequences"] for m in rl] == [5, 5] and all(m["groups_dropped"] == 0 for m in rl)
    assert all(m["updates"] == 1 for m in rl)
    assert_finite_checkpoint(tmp_path / "run", 2)


@pytest.mark.parametrize("max_failed_steps, stopped_at", [(2, 2), (1, 1), (0, None)])
def test_a_run_stops_with_one_line_after_consecutive_mostly_failed_steps(micro, tmp_path, max_failed_steps,
                                                                         stopped_at):
    # 5 of 8 fail in every step: most of them
    FlakyEnv.play(["win", "crash", "crash", "lose", "crash", "crash", "crash", "win"])
    cfg = config(micro, **{"steps": 3, "rollout.max_failed_steps": max_failed_steps})
    if stopped_at is None:  # 0: never stop
        train(cfg, tmp_path / "run", progress=False)
        assert [m["rollouts_failed"] for m in rl_metrics(tmp_path / "run")] == [5, 5, 5]
        return
    with pytest.raises(AgentHubError) as raised:
        train(cfg, tmp_path / "run", progress=False)
    line = str(raised.value)
    assert "\n" not in line
    assert line.startswith(f"stopped at RL step {stopped_at}: most episodes failed (error/timeout) in "
                           f"{max_failed_steps} consecutive steps (5 of 8 in the last; first: ")
    assert "RuntimeError: simulated env crash" in line and "rollout.max_failed_steps" in line
    rl = rl_metrics(tmp_path / "run")
    assert len(rl) == stopped_at and all(m["rollouts_failed"] == 5 and m["groups_dropped"] == 1 for m in rl)
    assert not (tmp_path / "run" / "checkpoints").exists()


# --- 15.11 (b): non-finite rewards ---------------------------------------------------------------

def test_non_finite_rewards_are_dropped_and_counted_and_never_reach_the_checkpoint(micro, tmp_path):
    # the group [[nan], [1.0], [0.0], [0.0]], and one with +inf and -inf
    FlakyEnv.play(["nan", "win", "lose", "lose", "inf", "win", "lose", "-inf"])
    train(config(micro, **{"save_every": 1}), tmp_path / "run", progress=False)
    rl = rl_metrics(tmp_path / "run")  # strict JSON: no NaN/Infinity written
    assert [m["rewards_nonfinite"] for m in rl] == [3, 3]
    assert [m["sequences"] for m in rl] == [5, 5] and all(m["updates"] == 1 for m in rl)
    assert all(math.isfinite(m["reward_mean"]) and math.isfinite(m["loss"]) for m in rl)
    assert_finite_checkpoint(tmp_path / "run", 1)
    assert_finite_checkpoint(tmp_path / "run", 2)


def hand_trajectory(outcome, logprob=-1.0, stop_reason="terminated"):
    turn = Turn([{"role": "user", "content": "x"}], {"role": "assistant", "content": "y"}, token_ids=[5, 6],
                logprobs=[logprob, -0.5], prompt_token_ids=[1, 2, 3])
    return Trajectory(ENV_ID, "t", 0, "policy", [turn], outcome=outcome, stop_reason=stop_reason)


@pytest.mark.parametrize("outcomes, counts", [
    ([math.nan, 1.0, 0.0, 0.0], {"rewards_nonfinite": 1}),  # the example
    ([math.inf, 1.0, 0.0, 0.0], {"rewards_nonfinite": 1}),
    ([-math.inf, 1.0, math.nan, 0.0], {"rewards_nonfinite": 2}),
    ([math.nan, math.inf, 1.0, 0.0], {"rewards_nonfinite": 2}),
], ids=["nan", "inf", "-inf-and-nan", "two-left"])
def test_score_groups_drops_non_finite_rewards_from_the_baseline(micro, outcomes, counts):
    scored = score_groups(config(micro), from_config("outcome"), [[hand_trajectory(o) for o in outcomes]])
    finite = [o for o in outcomes if math.isfinite(o)]
    assert scored.rewards_nonfinite == counts["rewards_nonfinite"] and scored.returns == finite
    expected = [a[0] for a in trajectory_advantages([[o] for o in finite], "grpo")]
    assert [s.advantages[-1] for s in scored.sequences] == pytest.approx(expected)


def test_score_groups_drops_overflowing_advantages_and_non_finite_logprobs(micro):
    cfg, outcome = config(micro), from_config("outcome")
    # finite rewards whose sum overflows: the mean is inf, every advantage NaN
    overflow = score_groups(cfg, outcome, [[hand_trajectory(o) for o in (1e308, 1e308, 0.0, 0.0)]])
    assert overflow.groups_nonfinite == 1 and not overflow.sequences
    bad_logprob = score_groups(cfg, outcome, [[hand_trajectory(1.0, math.nan), hand_trajectory(0.0),
                                               hand_trajectory(1.0, -math.inf), hand_trajectory(0.0)]])
    assert bad_logprob.logprobs_nonfinite == 2 and len(bad_logprob.sequences) == 2
    one_left = score_groups(cfg, outcome, [[hand_trajectory(1.0), hand_trajectory(0.0, stop_reason="timeout")]])
    assert (one_left.rollouts_failed, one_left.groups_dropped, one_left.sequences) == (1, 1, [])


def test_advantages_must_cover_every_turn():
    # zip would quietly leave the last turn untrained
    trajectory = hand_trajectory(1.0)
    trajectory.turns.append(trajectory.turns[0])
    with pytest.raises(ValueError):
        trajectory_sequence(trajectory, [1.0])
    sequence = trajectory_sequence(trajectory, [1.0, 2.0])
    assert sequence.loss_tokens == 4 and sequence.advantages[-2:] == [2.0, 2.0]
