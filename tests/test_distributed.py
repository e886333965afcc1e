"""Data-parallel training (trainers/distributed.py) on CPUs: gloo, 2 processes, torchrun.

(a) one `policy_update` at world size 2 gives the parameters world size 1 gives on the
same sequences, across the ways a rank's share can be uneven or empty and the loss
options that normalise over the minibatch; a non-finite loss on one rank skips the
update on both, and the next minibatch still trains; SFT likewise;
(b) `agenthub train --resume` on 2 processes continues a one-process run and one process
continues its checkpoint, landing on the weights of an uninterrupted one-process run.

Run as a script under torchrun, this file is the worker: (a)'s cases, then `agenthub
train` in the same process group (one launch: starting processes is most of the time).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agenthub.trainers import checkpoint as ckpt  # noqa: E402
from agenthub.trainers import distributed  # noqa: E402
from agenthub.trainers.batch import Sequence  # noqa: E402
from agenthub.trainers.config import load_config  # noqa: E402
from agenthub.trainers.schedule import StepSchedule  # noqa: E402

# name -> (number of sequences, index of one with a NaN advantage or None, loss settings)
CASES: dict[str, tuple[int, int | None, dict[str, Any]]] = {
    # 3 sequences on rank 0 (two micro-batches), 2 on rank 1 (one, then a padding pass)
    "uneven-shares": (5, None, {"micro_batch": 2}),
    # shuffled minibatches over 2 epochs, TIS against the trainer's old logprobs, KL to a reference
    "minibatches-tis-kl": (6, None, {"minibatches": 2, "epochs": 2, "micro_batch": 1, "tis_cap": 2.0,
                                     "kl_coef": 0.1, "aggregation": "seq-mean-token-sum-norm", "norm_length": 16}),
    # fewer sequences than ranks: rank 1 only pads
    "one-sequence": (1, None, {}),
    # a NaN in one minibatch: skipped on both ranks; the other minibatch applies
    "nonfinite": (6, 0, {"minibatches": 2, "micro_batch": 1}),
}


def sequences_of(n: int, nan_at: int | None) -> list[Sequence]:
    g = torch.Generator().manual_seed(n)
    out = []
    for i in range(n):
        length = 6 + int(torch.randint(0, 7, (1,), generator=g))
        ids = torch.randint(4, 300, (length,), generator=g).tolist()
        mask = [0] * (length // 2) + [1] * (length - length // 2)
        sign = 1.0 if i % 2 else -1.0
        advantages = [sign * m for m in mask]
        if i == nan_at:
            advantages[-1] = float("nan")
        # near the untrained model's log(1/400), so ratios start near 1, inside the clip range
        out.append(Sequence(ids, mask, advantages, [-6.0 * m for m in mask]))
    return out


def run_case(model_dir: str, name: str) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The policy's parameters and the update's metrics after one `policy_update` of case
    `name`, at the world size this process is in."""
    from agenthub.trainers.grpo import policy_update

    n, nan_at, loss = CASES[name]
    cfg = load_config(base={"model": model_dir, "suite": "tools/guess-number", "loss": loss,
                            "optim": {"lr": 0.1, "grad_clip": 0}})  # unclipped: the step shows the gradient's scale
    model, _ = ckpt.load_model(model_dir, torch.device("cpu"))
    reference = None
    if cfg.loss.kl_coef > 0:
        reference = copy.deepcopy(model).eval().requires_grad_(False)
    # plain SGD: the step is linear in the gradient; Adam would blow float noise in gradients
    # that are zero in exact arithmetic (a key bias shifts every score of a query alike) up to lr
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr)
    scheduler = StepSchedule(optimizer, "constant", 0, 1)
    distributed.wrap(model)
    model.train()
    result = policy_update(cfg, model, reference, optimizer, scheduler, sequences_of(n, nan_at), 1,
                           contextlib.nullcontext(), torch.device("cpu"))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, result


def run_sft(model_dir: str) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """The parameters and the logged metrics after `train_sft` on 5 sequences in batches
    of 3 for 2 epochs (a rank's share of 1 or 2; a batch of 2 leaves rank 1 one)."""
    from unittest import mock

    from agenthub.trainers import sft
    from agenthub.trainers.config import SFTConfig

    model, _ = ckpt.load_model(model_dir, torch.device("cpu"))
    tokenizer = mock.Mock(pad_token_id=0)
    sequences = [Sequence(s.ids, s.mask, [float(m) for m in s.mask], [0.0] * len(s.ids)) for s in sequences_of(5, None)]
    logs: list[dict[str, Any]] = []
    # SGD, as in run_case; SFT's own optimizer is AdamW
    with mock.patch.object(sft, "make_optimizer", lambda params, lr: torch.optim.SGD(params, lr=lr)):
        sft.train_sft(model, tokenizer, sequences, SFTConfig(epochs=2, batch_size=3, lr=0.1, warmup_steps=0,
                                                             grad_clip=1e9), log=logs.append, progress=False)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, logs


def gloo_problem() -> str | None:
    if not torch.distributed.is_available():
        return "this torch has no torch.distributed"
    if not torch.distributed.is_gloo_available():
        return "this torch has no gloo backend"
    return None


pytestmark = pytest.mark.skipif(gloo_problem() is not None, reason=str(gloo_problem()))


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    from agenthub.trainers.model_init import corpus_from_envs, init_model
    return init_model(tmp_path_factory.mktemp("model") / "micro", "tiny",
                      corpus_from_envs(["tools/guess-number-v0"], 4), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, vocab_size=400)


@pytest.fixture(scope="module")
def launched(micro, tmp_path_factory):
    """One torchrun launch of 2 processes (starting processes is most of these tests'
    time) that runs (a)'s cases, then `agenthub train --resume` one step on a run one
    process started (b)."""
    from agenthub.trainers.grpo import train

    tmp = tmp_path_factory.mktemp("launch")
    config = tmp / "guess.yaml"
    # dense per-turn rewards, so groups have variance and every step updates; one episode at
    # a time, so both world sizes batch each episode's forward passes alike; the short
    # context ends episodes after 3 turns, which keeps the test fast
    config.write_text(f"model: {micro}\nsuite: tools/guess-number\ntensorboard: false\neval: null\n"
                      "reward: turn\nalgorithm: {turn_level: true}\nsave_every: 1\nkeep_checkpoints: 3\n"
                      "optim: {lr: 1.0e-3}\n"
                      "rollout: {group_size: 2, tasks_per_step: 2, max_new_tokens: 6, mode: choice, concurrency: 1,\n"
                      "          max_context: 360}\n")
    mixed = tmp / "mixed"
    train(load_config(config, ["steps=1"]), mixed, progress=False)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        __file__, str(micro), str(tmp / "cases.pt"),
                        "train", str(config), "--out", str(mixed), "--resume", "steps=2"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    return {"stdout": r.stdout, "cases": torch.load(tmp / "cases.pt", weights_only=False), "config": config,
            "mixed": mixed}


def test_policy_update_at_world_size_2_equals_world_size_1(micro, launched):
    world2 = launched["cases"]
    initial = load_state(micro)
    for name in CASES:
        params1, result1 = run_case(str(micro), name)
        params2, result2 = world2[name]
        assert any(not torch.equal(params1[k], initial[k]) for k in initial), name  # an update happened
        for k in params1:
            torch.testing.assert_close(params2[k], params1[k], atol=1e-6, rtol=1e-5, msg=f"{name}: {k}")
        assert {k: result2[k] for k in ("updates", "updates_nonfinite", "action_tokens")} == \
               {k: result1[k] for k in ("updates", "updates_nonfinite", "action_tokens")}, name
        for k in result1.keys() - {"updates", "updates_nonfinite", "action_tokens"}:
            assert result2[k] == pytest.approx(result1[k], rel=1e-5, abs=1e-6), f"{name}: {k}"
    assert world2["nonfinite"][1]["updates_nonfinite"] == 1 and world2["nonfinite"][1]["updates"] == 1


def test_sft_at_world_size_2_equals_world_size_1(micro, launched):
    params1, logs1 = run_sft(str(micro))
    params2, logs2 = launched["cases"]["sft"]
    initial = load_state(micro)
    assert any(not torch.equal(params1[k], initial[k]) for k in initial)
    for k in params1:
        torch.testing.assert_close(params2[k], params1[k], atol=1e-6, rtol=1e-5, msg=k)
    assert [m["tokens"] for m in logs2] == [m["tokens"] for m in logs1] and len(logs1) == 4
    for m1, m2 in zip(logs1, logs2):
        assert (m2["loss"], m2["grad_norm"]) == pytest.approx((m1["loss"], m1["grad_norm"]), rel=1e-5)


def load_state(model_dir: Path) -> dict[str, torch.Tensor]:
    model, _ = ckpt.load_model(str(model_dir), torch.device("cpu"))
    return model.state_dict()


def test_resume_across_world_sizes_matches_the_one_process_run(launched, tmp_path):
    """1 process -> 2 processes (`agenthub train` under torchrun) -> 1 process, one step
    each, against 3 steps on one process."""
    from safetensors.torch import load_file

    from agenthub.trainers.grpo import train

    config, mixed, whole = launched["config"], launched["mixed"], tmp_path / "whole"
    assert launched["stdout"].count("wrote ") == 1  # rank 0 alone reports
    train(load_config(config, ["steps=3"]), mixed, resume=True, progress=False)
    train(load_config(config, ["steps=3"]), whole, progress=False)

    lines = [json.loads(line) for line in (mixed / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines if m.get("phase") == "rl"] == [1, 2, 3]  # one writer per step

    def task_ids(run, step):
        return [json.loads(line)["task_id"] for line in (run / "rollouts" / f"step-{step:06d}.jsonl").open()]
    # the two ranks played disjoint whole groups that together are the one-process step
    assert task_ids(mixed, 2) == task_ids(whole, 2) and len(set(task_ids(mixed, 2))) == 2

    def weights(run, step):
        return load_file(run / "checkpoints" / f"step-{step:06d}" / "model.safetensors")
    step1, step2 = weights(mixed, 1), weights(mixed, 2)
    assert any(not torch.equal(step1[k], step2[k]) for k in step1)  # the world-2 step trained
    for step in (2, 3):
        expected, got = weights(whole, step), weights(mixed, step)
        for k in expected:
            torch.testing.assert_close(got[k], expected[k], atol=1e-5, rtol=1e-4, msg=f"step {step}: {k}")


def test_vllm_engine_under_torchrun_is_one_clear_line(monkeypatch):
    cfg = load_config(base={"model": "m", "suite": "tools/guess-number", "rollout": {"engine": "vllm"}})
    distributed.check_supported(cfg)  # one process: allowed
    monkeypatch.setattr(distributed, "world", lambda: distributed.World(0, 2, 0))
    with pytest.raises(Exception, match="runs with one trainer process, not 2"):
        distributed.check_supported(cfg)


def _worker(model_dir: str, out: str, argv: list[str]) -> int:
    """(a)'s cases, saved by rank 0 to `out`; then `agenthub ARGV` (what `torchrun -m
    agenthub ARGV` runs, in the process group this one already made)."""
    from agenthub.cli import main

    with distributed.session() as world:
        assert world.size == 2, world
        results = {name: run_case(model_dir, name) for name in CASES}
        results["sft"] = run_sft(model_dir)
        if distributed.is_main():
            torch.save(results, out)
        return main(argv)


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1], sys.argv[2], sys.argv[3:]))
