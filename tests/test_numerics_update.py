"""The policy update's numerics (issue 15, item 11) on a real (tiny) transformers model:

- the LR schedule follows the optimizer steps actually taken: it ends at its end value
  after the last update and warms up over what it says, whatever the minibatch split
  and however many steps took no update (zero-variance steps);
- a NaN/inf loss or gradient norm never reaches the weights (the update is skipped and
  counted), and a checkpoint is never written from non-finite weights;
- logged entropy, KL, ratio, clip fraction and TIS weight are token-weighted means,
  the same whatever `loss.micro_batch` is.
"""

from __future__ import annotations

import copy
import math
import os

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from agenthub.errors import AgentHubError  # noqa: E402
from agenthub.trainers.batch import Sequence, action_logprobs, collate  # noqa: E402
from agenthub.trainers.config import load_config  # noqa: E402
from agenthub.trainers.grpo import check_finite_weights, minibatch_split, policy_update  # noqa: E402
from agenthub.trainers.schedule import StepSchedule, lr_multiplier  # noqa: E402

EXAMPLES = int(os.environ.get("AGENTHUB_HYPOTHESIS_EXAMPLES", "20"))
LR = 1e-3
CPU = torch.device("cpu")


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1, pad_token_id=0,
                                      eos_token_id=1, max_position_embeddings=64)
    return transformers.LlamaForCausalLM(config).train()


def sequences(n: int, seed: int = 0) -> list[Sequence]:
    """n two-turn rollouts of different lengths: env tokens (mask 0) then sampled tokens."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        ids, mask = [], []
        for _ in range(2):
            prompt, action = 2 + int(torch.randint(0, 4, (1,), generator=g)), 1 + int(torch.randint(0, 5, (1,),
                                                                                                  generator=g))
            ids += torch.randint(2, 32, (prompt + action,), generator=g).tolist()
            mask += [0] * prompt + [1] * action
        advantage = 1.0 if i % 2 == 0 else -1.0
        out.append(Sequence(ids, mask, [advantage * m for m in mask], [-3.0 * m for m in mask]))
    return out


def config(**loss):
    return load_config(base={"model": "unused", "suite": "unused", "optim": {"lr": LR}, "loss": loss,
                             "rollout": {"temperature": 1.0}})


def run_steps(cfg, model, counts, kind="linear", warmup=0, reference=None):
    """RL steps with `counts[i]` sequences each (0: a step whose groups all had zero
    variance); returns (schedule, [per step: LRs the updates used], [per step: metrics])."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    schedule = StepSchedule(optimizer, kind, warmup, len(counts))
    used: list[float] = []
    real_step = optimizer.step

    def recording_step(*args, **kwargs):  # the LR each update really applied
        used.append(optimizer.param_groups[0]["lr"])
        return real_step(*args, **kwargs)
    optimizer.step = recording_step
    per_step, results = [], []
    for step, n in enumerate(counts, start=1):
        before = len(used)
        results.append(policy_update(cfg, model, reference, optimizer, schedule, sequences(n, step), step,
                                     torch.autocast("cpu", enabled=False), CPU))
        per_step.append(used[before:])
    return schedule, per_step, results


# --- 15.11 (a): the LR schedule follows the updates taken ---------------------------------

def test_the_issue_example_ends_at_zero_after_16_updates():
    # steps=4, epochs=1, minibatches=4, 5 sequences per step: 4 updates a step (2+1+1+1),
    # and the linear schedule reads 0 after the last one (it read 2.5e-4 before the fix)
    schedule, per_step, _ = run_steps(config(minibatches=4), tiny_model(), [5, 5, 5, 5])
    assert [len(u) for u in per_step] == [4, 4, 4, 4]
    flat = [lr for u in per_step for lr in u]
    assert flat == pytest.approx([LR * (16 - i) / 16 for i in range(16)], rel=1e-12)
    assert schedule.get_last_lr() == [0.0]


def hf_lrs(kind, warmup_updates, total_updates):
    """transformers' own scheduler, sized for a known number of updates: the oracle."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    name = "constant_with_warmup" if kind == "constant" else kind
    scheduler = transformers.get_scheduler(name, optimizer, num_warmup_steps=warmup_updates,
                                           num_training_steps=total_updates)
    lrs = []
    for _ in range(total_updates):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs, optimizer.param_groups[0]["lr"]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(kind=st.sampled_from(["linear", "cosine", "constant"]), steps=st.integers(1, 4),
       epochs=st.integers(1, 2), minibatches=st.integers(1, 4), n=st.integers(1, 6), data=st.data())
def test_uniform_steps_match_transformers_scheduler_sized_for_the_updates_taken(kind, steps, epochs, minibatches,
                                                                                n, data):
    warmup = data.draw(st.integers(0, steps - 1))  # transformers' cosine ends at 1, not 0, when warmup fills the run
    cfg = config(epochs=epochs, minibatches=minibatches, micro_batch=4)
    schedule, per_step, _ = run_steps(cfg, tiny_model(), [n] * steps, kind, warmup)
    k = epochs * min(minibatches, n)  # 5 sequences in 4 minibatches is 4 updates, not 3
    assert [len(u) for u in per_step] == [k] * steps
    expected, end = hf_lrs(kind, warmup * k, steps * k)
    assert [lr for u in per_step for lr in u] == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert schedule.get_last_lr()[0] == pytest.approx(end, abs=1e-15)
    assert schedule.get_last_lr()[0] == (LR if kind == "constant" else 0.0)  # exactly


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(kind=st.sampled_from(["linear", "cosine", "constant"]),
       counts=st.lists(st.integers(0, 5), min_size=2, max_size=5), minibatches=st.integers(1, 3), data=st.data())
def test_uneven_and_empty_steps_keep_the_schedule_on_the_step_clock(kind, counts, minibatches, data):
    """Steps with different update counts, and steps with none (all groups zero-variance):
    the schedule after step s reads its value at s, warmup lasts `warmup` steps, and the
    end value comes after the last step."""
    warmup = data.draw(st.integers(0, len(counts)))
    schedule, per_step, results = run_steps(config(minibatches=minibatches, micro_batch=2), tiny_model(), counts,
                                            kind, warmup)
    for step, (n, used, result) in enumerate(zip(counts, per_step, results), start=1):
        assert len(used) == result["updates"] == min(n, minibatches)
        for j, lr in enumerate(used):  # update j of k runs at progress step - 1 + j / k
            assert lr == pytest.approx(LR * lr_multiplier(kind, step - 1 + j / len(used), warmup, len(counts)))
            if step - 1 + j / len(used) < warmup:
                assert lr < LR
            elif kind == "constant":
                assert lr == LR  # warmup is over after exactly `warmup` steps
        if used and kind != "constant":  # the schedule moves on through the step's updates
            assert used == sorted(used, reverse=step > warmup)
    assert schedule.get_last_lr()[0] == (LR if kind == "constant" else 0.0)


def test_minibatch_split_takes_the_minibatches_it_says():
    assert [len(p) for p in minibatch_split(list(range(5)), 4)] == [2, 1, 1, 1]
    assert [len(p) for p in minibatch_split(list(range(7)), 3)] == [3, 2, 2]
    assert minibatch_split([3, 1], 4) == [[3], [1]]
    parts = minibatch_split(list(range(10)), 3)
    assert sum(parts, []) == list(range(10))


def test_unknown_schedule_fails_when_built():
    with pytest.raises(ValueError, match="unknown schedule"):
        StepSchedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), "step", 0, 4)


# --- 15.11 (b): nothing non-finite reaches the weights -------------------------------------

def params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def update_once(model, seqs, **loss):
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    schedule = StepSchedule(optimizer, "constant", 0, 1)
    result = policy_update(config(**loss), model, None, optimizer, schedule, seqs, 1,
                           torch.autocast("cpu", enabled=False), CPU)
    return result, optimizer


@pytest.mark.parametrize("poison", ["nan_advantage", "inf_advantage", "neg_inf_rollout_logprob"])
def test_a_non_finite_loss_is_skipped_and_the_weights_stay_as_they_were(poison):
    model = tiny_model()
    seqs = sequences(4)
    bad = seqs[1]  # advantage -1: with a -inf sampling logprob its ratio is inf, its loss +inf
    if poison == "nan_advantage":
        bad.advantages = [math.nan if m else 0.0 for m in bad.mask]
    elif poison == "inf_advantage":
        bad.advantages = [math.inf if m else 0.0 for m in bad.mask]
    else:
        bad.rollout_logprobs = [-math.inf if m else 0.0 for m in bad.mask]
    before = params(model)
    result, optimizer = update_once(model, seqs)
    assert result["updates"] == 0 and result["updates_nonfinite"] == 1
    assert all(torch.equal(before[k], v) for k, v in params(model).items())
    assert not optimizer.state  # Adam's moments were not touched either
    assert "entropy" not in result  # nothing is reported from an update that was not taken


def test_only_the_minibatch_with_the_non_finite_loss_is_skipped():
    model = tiny_model()
    seqs = sequences(4)
    seqs[2].advantages = [math.nan if m else 0.0 for m in seqs[2].mask]
    before = params(model)
    result, _ = update_once(model, seqs, minibatches=2)
    assert result["updates"] == 1 and result["updates_nonfinite"] == 1
    after = params(model)
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(before[k], v) for k, v in after.items())  # the good minibatch was applied


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_non_finite_gradient_norm_is_skipped(value):
    model = tiny_model()
    # a finite loss whose gradient overflows in one layer (as a bf16 overflow would)
    handle = model.model.layers[0].mlp.down_proj.weight.register_hook(lambda g: torch.full_like(g, value))
    before = params(model)
    try:
        result, optimizer = update_once(model, sequences(4))
    finally:
        handle.remove()
    assert result["updates"] == 0 and result["updates_nonfinite"] == 1
    assert all(torch.equal(before[k], v) for k, v in params(model).items()) and not optimizer.state


def test_non_finite_weights_are_never_checkpointed():
    model = tiny_model()
    check_finite_weights(model, 3)
    with torch.no_grad():
        model.lm_head.weight[0, 0] = math.nan
    with pytest.raises(AgentHubError, match=r"lm_head.weight is not finite after RL step 3; no checkpoint"):
        check_finite_weights(model, 3)


# --- 15.11 (c): token-weighted diagnostics ---------------------------------------------------

STATS = ("entropy", "kl", "ratio", "clip_fraction", "tis_weight", "loss", "grad_norm")


@pytest.mark.parametrize("minibatches", [1, 2])
def test_logged_means_do_not_depend_on_micro_batch(minibatches):
    """Sequences of different lengths, so a mean of per-micro-batch means would differ."""
    reference = tiny_model(seed=1).eval()  # another model, so the KL term is not zero
    base = tiny_model()
    results = {}
    for micro in (1, 2, 3, 7):
        cfg = config(minibatches=minibatches, micro_batch=micro, kl_coef=0.1, tis_cap=2.0)
        _, _, (result,) = run_steps(cfg, copy.deepcopy(base), [7], "constant", 0, reference=reference)
        results[micro] = result
    for key in STATS:
        values = [results[m][key] for m in results]
        assert values == pytest.approx([values[0]] * len(values), rel=1e-5, abs=1e-7), key
    assert results[1]["tis_weight"] > 0 and results[1]["kl"] > 0


def test_entropy_is_the_mean_over_all_action_tokens():
    seqs = sequences(7, seed=1)
    model = tiny_model()
    with torch.no_grad():
        _, entropy = action_logprobs(model, collate(seqs, 0))
    result, _ = update_once(copy.deepcopy(model), seqs, micro_batch=2)
    assert result["entropy"] == pytest.approx(float(entropy.mean()), rel=1e-5)
    assert result["action_tokens"] == entropy.numel()  # what the token-mean divides by is what it sums


def test_grad_clip_zero_turns_clipping_off_instead_of_zeroing_the_gradient():
    model = tiny_model()
    before = params(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    cfg = load_config(base={"model": "unused", "suite": "unused", "optim": {"lr": LR, "grad_clip": 0}})
    result = policy_update(cfg, model, None, optimizer, StepSchedule(optimizer, "constant", 0, 1), sequences(4), 1,
                           torch.autocast("cpu", enabled=False), CPU)
    assert result["updates"] == 1 and result["grad_norm"] > 0
    assert any(not torch.equal(before[k], v) for k, v in params(model).items())
