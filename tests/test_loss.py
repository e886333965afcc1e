"""The policy loss against hand-computed values, and the loss mask on a real rollout:
environment tokens get exactly zero gradient."""

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agenthub.runner import Episode, run_episodes  # noqa: E402
from agenthub.trainers.batch import action_logprobs, causal_lm_parts, collate, trajectory_sequence  # noqa: E402
from agenthub.trainers.checkpoint import load_model  # noqa: E402
from agenthub.trainers.engine import HFEngine  # noqa: E402
from agenthub.trainers.losses import (aggregation_denominator, clipped_policy_loss, k3_kl,  # noqa: E402
                                      tis_weights)
from agenthub.trainers.model_init import corpus_from_envs, init_model  # noqa: E402
from agenthub.trainers.policy import PolicyAgent  # noqa: E402
from agenthub.environments.toy import ENV_ID, register_toy_env  # noqa: E402


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


def test_clipped_loss_takes_the_pessimistic_branch():
    logp = torch.log(t(1.5, 1.5, 0.5, 0.5, 1.0))  # ratios against old = 0
    out = clipped_policy_loss(logp, t(0, 0, 0, 0, 0), t(1, -1, 1, -1, 2), clip_low=0.2, clip_high=0.28)
    # A>0, ratio 1.5: min(1.5, 1.28) -> -1.28 (clipped); A<0, ratio 1.5: -(-1.5) = 1.5 (unclipped)
    # A>0, ratio 0.5: -0.5 (unclipped); A<0, ratio 0.5: max(0.5, 0.8) = 0.8 (clipped); ratio 1: -2
    assert out.loss.tolist() == pytest.approx([-1.28, 1.5, -0.5, 0.8, -2.0], abs=1e-6)
    assert out.clipped.tolist() == [1, 0, 0, 1, 0]
    assert out.kl is None


def test_kl_penalty_and_tis_weights():
    assert k3_kl(t(0.0), torch.log(t(0.5))).item() == pytest.approx(0.5 + math.log(2) - 1, abs=1e-6)
    assert k3_kl(t(-1.0), t(-1.0)).item() == 0.0
    out = clipped_policy_loss(t(0.0), t(0.0), t(1.0), clip_low=0.2, clip_high=0.2, ref_logp=torch.log(t(0.5)),
                              kl_coef=0.1, weights=t(2.0))
    assert out.loss.item() == pytest.approx(-1.0 * 2.0 + 0.1 * (0.5 + math.log(2) - 1), abs=1e-6)
    # exp(log 3) = 3, capped at 2; exp(log 0.5) = 0.5 kept
    assert tis_weights(torch.log(t(3.0, 0.5)), t(0.0, 0.0), cap=2.0).tolist() == pytest.approx([2.0, 0.5])


def test_aggregation_denominators():
    assert aggregation_denominator("token-mean", n_tokens=37, n_sequences=4, norm_length=100) == 37
    assert aggregation_denominator("seq-mean-token-sum-norm", n_tokens=37, n_sequences=4, norm_length=100) == 400
    with pytest.raises(ValueError):
        aggregation_denominator("sum", 1, 1, 1)


@pytest.fixture(scope="module")
def rollout(tmp_path_factory):
    """A real rollout of a fresh micro model on the lamp corridor (choice mode)."""
    register_toy_env()
    path = init_model(tmp_path_factory.mktemp("m") / "micro", "tiny", corpus_from_envs([ENV_ID], 10),
                      hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, vocab_size=300)
    model, tokenizer = load_model(path, torch.device("cpu"))
    agent = PolicyAgent(HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id), tokenizer, mode="choice",
                        temperature=1.0)
    trajectories = run_episodes([Episode(ENV_ID, seed) for seed in range(8)], agent, concurrency=8)
    longest = max(trajectories, key=lambda tr: len(tr.turns))
    return model, tokenizer, longest


def test_loss_mask_covers_exactly_the_sampled_tokens(rollout):
    _, tokenizer, trajectory = rollout
    advantages = [float(i + 1) for i in range(len(trajectory.turns))]
    seq = trajectory_sequence(trajectory, advantages)
    position = 0
    for i, turn in enumerate(trajectory.turns):
        n_prompt, n_action = len(turn.prompt_token_ids), len(turn.token_ids)
        assert seq.mask[position:position + n_prompt] == [0] * n_prompt
        assert seq.mask[position + n_prompt:position + n_prompt + n_action] == [1] * n_action
        assert seq.ids[position + n_prompt + n_action - 1] == tokenizer.eos_token_id  # end-of-turn is learned
        assert set(seq.advantages[position + n_prompt:position + n_prompt + n_action]) == {advantages[i]}
        position += n_prompt + n_action
    assert position == len(seq.ids)


def test_environment_tokens_get_exactly_zero_gradient(rollout):
    model, tokenizer, trajectory = rollout
    seq = trajectory_sequence(trajectory, [1.0] * len(trajectory.turns))
    batch = collate([seq], tokenizer.pad_token_id)
    captured = {}
    decoder, _ = causal_lm_parts(model)

    def keep(module, inputs, output):
        output.last_hidden_state.retain_grad()
        captured["hidden"] = output.last_hidden_state
    handle = decoder.register_forward_hook(keep)
    try:
        model.zero_grad()
        logp, _ = action_logprobs(model, batch)
        clipped_policy_loss(logp, logp.detach(), batch.advantages, clip_low=0.2, clip_high=0.2).loss.sum().backward()
    finally:
        handle.remove()
    # the hidden state at position p predicts token p + 1: only action tokens may pull on it
    grad_norm = captured["hidden"].grad[0].abs().sum(-1)
    predicts_action = torch.tensor(seq.mask[1:] + [0], dtype=torch.bool)
    assert torch.all(grad_norm[~predicts_action] == 0)
    assert torch.all(grad_norm[predicts_action] > 0)
    assert int(predicts_action.sum()) == sum(len(turn.token_ids) for turn in trajectory.turns)
