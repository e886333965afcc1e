"""Overlapped rollouts with a staleness bound (issue 19 item 1): `rollout.max_staleness`.

k = 0 takes today's strictly alternating path (no producer, no versions) and is
reproducible to the bit; k >= 1 records the policy version on every turn, including a
turn sampled after a weight update mid-episode, and never trains a rollout more than k
versions behind the weights; the rollout engine samples from its own copy of the weights.
"""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch  # noqa: E402

from agenthub.environments.toy import ENV_ID, SUITE, register_toy_env  # noqa: E402
from agenthub.errors import AgentHubError  # noqa: E402
from agenthub.factory import make  # noqa: E402
from agenthub.runner import Episode, run_episodes  # noqa: E402
from agenthub.trainers.async_rollouts import OverlappedRollouts, VersionedEngine, fresh_groups, staleness  # noqa: E402
from agenthub.trainers.checkpoint import load_model  # noqa: E402
from agenthub.trainers.config import load_config  # noqa: E402
from agenthub.trainers.engine import HFEngine  # noqa: E402
from agenthub.trainers import grpo  # noqa: E402
from agenthub.trainers.grpo import iter_metrics, train  # noqa: E402
from agenthub.trainers.model_init import corpus_from_envs, init_model  # noqa: E402
from agenthub.trainers.policy import PolicyAgent  # noqa: E402
from agenthub.types import Trajectory, Turn, read_trajectories, write_trajectories  # noqa: E402

MICRO = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=1,
             num_key_value_heads=1, vocab_size=300)


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    register_toy_env()
    return init_model(tmp_path_factory.mktemp("model") / "micro", "tiny", corpus_from_envs([ENV_ID], 5), **MICRO)


@pytest.fixture(autouse=True)
def no_report(monkeypatch):
    """The run's HTML report (matplotlib) is most of a short run's time, and not under test here."""
    monkeypatch.setattr("agenthub.trainers.report.write_train_report", lambda out: None)


def run_config(model, **settings):
    base = {"model": str(model), "suite": SUITE, "steps": 2, "seed": 0, "tensorboard": False, "eval": None,
            "rollout": {"mode": "choice", "group_size": 4, "tasks_per_step": 2, "concurrency": 8,
                        "max_new_tokens": 8, "max_context": 512},
            "optim": {"lr": 3e-3}}
    return load_config(base=base, overrides=settings)


def weights(path) -> dict[str, torch.Tensor]:
    model, _ = load_model(path, torch.device("cpu"))
    return dict(model.state_dict())


def rl_metrics(run) -> list[dict]:
    return [m for m in iter_metrics(run / "metrics.jsonl") if m.get("phase") == "rl"]


# --- the setting ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [-1, "two", True, 1.5, [1]])
def test_max_staleness_must_be_a_non_negative_integer(value):
    with pytest.raises(AgentHubError) as e:
        run_config("unused", **{"rollout.max_staleness": value})
    assert "rollout.max_staleness" in str(e.value) and "\n" not in str(e.value)


# --- k = 0: today's loop ----------------------------------------------------------------------

def test_k0_is_the_unchanged_alternating_loop_and_reproducible_to_the_bit(micro, tmp_path):
    # unset and an explicit 0 are the same run, weight for weight and metric for metric
    train(run_config(micro), tmp_path / "default", progress=False)
    train(run_config(micro, **{"rollout.max_staleness": 0}), tmp_path / "zero", progress=False)
    a, b = weights(tmp_path / "default" / "model"), weights(tmp_path / "zero" / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    start = weights(micro)
    assert any(not torch.equal(a[k], start[k]) for k in a)  # it trained
    timeless = ("time", "rollout_time", "update_time", "step_time", "generation_tokens_per_s", "peak_memory_gb")
    ma, mb = rl_metrics(tmp_path / "default"), rl_metrics(tmp_path / "zero")
    assert [{k: v for k, v in m.items() if k not in timeless} for m in ma] == \
           [{k: v for k, v in m.items() if k not in timeless} for m in mb]
    # no producer, no versions, no staleness metrics: the k >= 1 machinery is not on this path
    assert not any(k in m for m in ma for k in ("staleness_mean", "samples_stale_dropped", "rollout_wait"))
    for step in range(1, 3):
        for t in read_trajectories(tmp_path / "zero" / "rollouts" / f"step-{step:06d}.jsonl"):
            assert all("policy_version" not in turn.info for turn in t.turns)


# --- k >= 1: the bound ------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 2])
def test_no_trained_rollout_is_more_than_k_versions_old(micro, tmp_path, k):
    steps = 4
    train(run_config(micro, steps=steps, **{"rollout.max_staleness": k, "loss.tis_cap": 2.0}), tmp_path / "run",
          progress=False)
    metrics = rl_metrics(tmp_path / "run")
    assert [m["step"] for m in metrics] == list(range(1, steps + 1))
    seen = []
    for m in metrics:
        step = m["step"]
        trajectories = read_trajectories(tmp_path / "run" / "rollouts" / f"step-{step:06d}.jsonl")
        ages = [staleness(t, step) for t in trajectories]
        assert None not in ages  # every turn of every rollout recorded its version
        for t in trajectories:  # the version is the producer's: never weights the trainer has not made yet
            assert all(0 <= turn.info["policy_version"] <= step - 1 for turn in t.turns)
        too_old = sum(a > k for a in ages)
        assert m["samples_stale_dropped"] == too_old
        kept = [a for a in ages if a <= k]
        assert m["staleness_max"] == max(kept) <= k
        assert m["staleness_mean"] == pytest.approx(sum(kept) / len(kept))
        seen += kept
    assert metrics[0]["staleness_max"] == 0  # step 1 is played on the starting weights
    assert max(seen) >= 1  # and later steps were played while earlier ones trained
    assert not [t for t in threading.enumerate() if t.name == "rollout-producer"]  # stopped with the run


def versioned(turn_versions: list[int | None]) -> Trajectory:
    return Trajectory(ENV_ID, "t", 0, "policy", turns=[
        Turn([], {"role": "assistant", "content": "go red"}, info={} if v is None else {"policy_version": v})
        for v in turn_versions])


@pytest.mark.parametrize("versions,step,k,dropped", [
    ([4, 4, 4], 5, 0, 0),  # on-policy
    ([3, 4, 4], 5, 0, 1),  # one turn a version behind: too old for k = 0
    ([3, 4, 4], 5, 1, 0),  # but fine for k = 1
    ([2, 3, 4], 5, 1, 1),  # the oldest turn decides, even when later turns are fresh
    ([1, 1], 5, 2, 1),
    ([None, None], 5, 0, 0),  # no version (not sampled through a versioned engine): kept
])
def test_fresh_groups_drops_exactly_the_rollouts_older_than_k(versions, step, k, dropped):
    fresh = versioned([step - 1, step - 1])
    groups, metrics = fresh_groups([[versioned(versions), fresh], [fresh, fresh]], step, k)
    assert metrics["samples_stale_dropped"] == dropped
    assert [len(g) for g in groups] == [2 - dropped, 2]
    assert metrics["staleness_max"] <= k


# --- versions on turns, weights reaching the engine -------------------------------------------

def test_a_turn_after_a_mid_episode_update_records_the_new_version(micro, tmp_path):
    model, tokenizer = load_model(micro, torch.device("cpu"))
    engine = VersionedEngine(HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id), version=7)
    agent = PolicyAgent(engine, tokenizer, mode="choice", temperature=1.0, max_new_tokens=8)

    def make_updating(env_id, **kwargs):  # the trainer publishes new weights after each episode's first turn
        env = make(env_id, **kwargs)
        step = env.step

        def step_then_update(action):
            out = step(action)
            if env.turn == 1 and not out[2]:
                engine.load_weights(model)
            return out
        env.step = step_then_update
        return env

    trajectories = run_episodes([Episode(ENV_ID, seed) for seed in range(6)], agent, concurrency=1,
                                make_env=make_updating)
    played = [[turn.info["policy_version"] for turn in t.turns] for t in trajectories]
    assert any(len(v) >= 2 for v in played)
    for versions in played:
        assert versions[0] <= versions[-1] and all(b - a in (0, 1) for a, b in zip(versions, versions[1:]))
        if len(versions) >= 2:  # the second turn is the new weights'
            assert versions[1] == versions[0] + 1
    # and the versions round-trip through trajectory JSONL
    write_trajectories(tmp_path / "t.jsonl", trajectories)
    assert [[turn.info["policy_version"] for turn in t.turns] for t in read_trajectories(tmp_path / "t.jsonl")] \
        == played


def test_the_rollout_engine_samples_its_own_copy_until_weights_are_loaded(micro):
    model, tokenizer = load_model(micro, torch.device("cpu"))
    engine = VersionedEngine(HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id), version=0)
    prompt, candidates = [[5, 6, 7, 8]], [[[9, 10], [11]]]

    def scores():
        return engine.score(prompt, candidates, temperature=1.0)

    before = scores()
    with torch.no_grad():  # the optimizer's in-place update of the live model
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert scores() == before  # in-flight sampling never sees half-trained weights
    live = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id).score(prompt, candidates, temperature=1.0)
    assert live != before
    engine.load_weights(model)
    assert engine.version == 1 and scores() == live
    engine.stop()
    with pytest.raises(AgentHubError):
        scores()


def test_the_producer_runs_at_most_k_steps_ahead_and_reports_its_failure(micro):
    model, tokenizer = load_model(micro, torch.device("cpu"))
    engine = VersionedEngine(HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id), version=0)
    started: dict[int, int] = {}  # step -> the version current when its rollouts started
    step_started = threading.Condition()

    def play(step):
        with step_started:
            started[step] = engine.version
            step_started.notify_all()
        if step == 4:
            raise RuntimeError("env pool gone")
        return [versioned([engine.version])]

    class Counter:
        generated_tokens = 0

    def wait_started(step):
        with step_started:
            return step_started.wait_for(lambda: step in started, timeout=10)

    with OverlappedRollouts(play, engine, Counter(), 1, 4, max_staleness=1) as producer:
        assert producer.take(1).step == 1
        assert wait_started(2) and started[2] == 0  # step 2 plays while step 1 trains
        time.sleep(0.3)
        assert 3 not in started  # but step 3 waits for step 1's weights
        engine.load_weights(model)  # step 1 trained
        assert producer.take(2).step == 2
        assert wait_started(3) and started[3] == 1
        engine.load_weights(model)
        producer.take(3)
        with pytest.raises(AgentHubError, match="rollout producer failed: RuntimeError: env pool gone"):
            producer.take(4)
    assert all(version >= step - 1 - 1 for step, version in started.items())


def test_a_trainer_that_fails_stops_the_producer_and_its_episodes(micro, tmp_path, monkeypatch):
    real, updates = grpo.policy_update, []

    def dies_at_step_2(*args, **kwargs):
        updates.append(1)
        if len(updates) == 2:
            raise RuntimeError("the trainer died")
        return real(*args, **kwargs)

    monkeypatch.setattr(grpo, "policy_update", dies_at_step_2)
    with pytest.raises(RuntimeError, match="the trainer died"):
        train(run_config(micro, steps=6, **{"rollout.max_staleness": 2}), tmp_path / "run", progress=False)
    assert not [t for t in threading.enumerate() if t.name == "rollout-producer"]
