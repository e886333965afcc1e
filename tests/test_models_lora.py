"""LoRA the PEFT way and weight precision (issue 15, items 6-7): adapters saved with PEFT
at every checkpoint and at the end, `lora.merge`, `hf:ADAPTER_DIR`, exact resume from an
adapter checkpoint or a bfloat16 one, gradient checkpointing."""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from safetensors.torch import load_file  # noqa: E402

from agenthub.trainers.config import load_config  # noqa: E402
from agenthub.trainers.grpo import train  # noqa: E402
from agenthub.trainers.model_sources import load_model  # noqa: E402
from agenthub.trainers.precision import MasterWeightAdamW, make_optimizer  # noqa: E402
from agenthub.environments.toy import SUITE  # noqa: E402

CPU = torch.device("cpu")


def config(model, **overrides):
    base = {"model": str(model), "suite": SUITE, "steps": 3, "save_every": 1, "keep_checkpoints": 3,
            "tensorboard": False, "eval": None,
            "rollout": {"mode": "choice", "group_size": 4, "tasks_per_step": 2, "concurrency": 1,
                        "max_new_tokens": 8, "max_context": 512},
            "optim": {"lr": 1e-2, "schedule": "cosine", "warmup_steps": 1}}
    return load_config(base=base, overrides=overrides)


def logits(model, ids=(5, 17, 42, 99, 7)):
    with torch.no_grad():
        return model(input_ids=torch.tensor([list(ids)])).logits.float()


def weights_file(checkpoint):
    name = "adapter_model.safetensors" if (checkpoint / "adapter_config.json").exists() else "model.safetensors"
    return load_file(checkpoint / name)


def resume_matches(cfg, tmp_path):
    """Train 3 steps; train again from the step-2 checkpoint; step 3 must be bit-identical."""
    whole = tmp_path / "whole"
    train(cfg, whole, progress=False)
    stopped = tmp_path / "stopped"
    shutil.copytree(whole, stopped)
    for gone in ("checkpoints/step-000003", "model", "adapter"):
        shutil.rmtree(stopped / gone, ignore_errors=True)
    train(cfg, stopped, resume=True, progress=False)
    step2 = weights_file(whole / "checkpoints" / "step-000002")
    expected = weights_file(whole / "checkpoints" / "step-000003")
    resumed = weights_file(stopped / "checkpoints" / "step-000003")
    assert set(expected) == set(resumed)
    assert not all(torch.equal(step2[k], expected[k]) for k in expected)  # step 3 changed the weights
    assert all(torch.equal(resumed[k], expected[k]) for k in expected)
    return whole


def test_lora_saves_peft_adapters_and_resumes_exactly(micro_model, tmp_path):
    whole = resume_matches(config(micro_model, lora={"r": 4, "alpha": 8}), tmp_path)
    for step in (1, 2, 3):
        checkpoint = whole / "checkpoints" / f"step-{step:06d}"
        assert (checkpoint / "adapter_model.safetensors").exists() and not (checkpoint / "model.safetensors").exists()
        adapter_config = json.loads((checkpoint / "adapter_config.json").read_text())
        assert adapter_config["base_model_name_or_path"] == str(micro_model.resolve())
        assert adapter_config["r"] == 4 and adapter_config["peft_type"] == "LORA"
    # the final adapter is the last checkpoint's; hf:ADAPTER loads base + adapter
    final = load_file(whole / "adapter" / "adapter_model.safetensors")
    last = weights_file(whole / "checkpoints" / "step-000003")
    assert all(torch.equal(final[k], last[k]) for k in last)
    base, _ = load_model(micro_model, CPU)
    with_adapter, _ = load_model(whole / "adapter", CPU)
    assert not any("lora" in name for name, _ in with_adapter.named_parameters())  # merged on load
    assert not torch.allclose(logits(base), logits(with_adapter), atol=1e-4)  # the adapter changes the model
    from transformers import AutoModelForCausalLM  # lora.merge (default true): OUT/model loads without PEFT
    merged = AutoModelForCausalLM.from_pretrained(whole / "model")
    torch.testing.assert_close(logits(merged), logits(with_adapter), atol=1e-5, rtol=1e-5)
    unmerged, _ = load_model(whole / "adapter", CPU, merge=False)
    assert any("lora_" in name for name, _ in unmerged.named_parameters())
    torch.testing.assert_close(logits(unmerged), logits(with_adapter), atol=1e-5, rtol=1e-5)


def test_hf_agent_on_an_adapter_directory(micro_model, tmp_path):
    from agenthub.agents import load_agent
    from agenthub.evaluation import evaluate

    cfg = config(micro_model, steps=1, lora={"r": 4, "alpha": 8, "merge": False})
    train(cfg, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "model" / "adapter_config.json").exists()  # lora.merge: false
    assert not (tmp_path / "run" / "model" / "model.safetensors").exists()
    agent = load_agent(f"hf:{tmp_path / 'run' / 'model'}?mode=choice")
    results = evaluate(f"{SUITE}:test", agent, tmp_path / "eval", episodes=2, concurrency=2, progress=False)
    assert results["episodes"] == 2 and results["errors"] == 0


def test_lora_after_sft_names_the_sft_model_as_its_base(micro_model, tmp_path):
    cfg = config(micro_model, steps=1, sft={"tasks": 8, "batch_size": 8}, lora={"r": 4})
    train(cfg, tmp_path / "run", progress=False)
    adapter_config = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str((tmp_path / "run" / "sft").resolve())


def test_resume_with_the_other_kind_of_checkpoint_is_one_line(micro_model, tmp_path):
    from agenthub.errors import AgentHubError

    train(config(micro_model, steps=1), tmp_path / "run", progress=False)
    with pytest.raises(AgentHubError, match="holds full weights, but this run uses LoRA") as e:
        train(config(micro_model, steps=2, lora={"r": 4}), tmp_path / "run", resume=True, progress=False)
    assert "\n" not in str(e.value)


def test_bfloat16_weights_train_with_float32_state_and_resume_exactly(micro_model, tmp_path):
    whole = resume_matches(config(micro_model, dtype="bfloat16"), tmp_path)
    weights = load_file(whole / "checkpoints" / "step-000003" / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}
    state = torch.load(whole / "checkpoints" / "step-000003" / "trainer_state.pt", weights_only=False)
    masters = state["optimizer"]["master_params"]
    assert masters and all(m.dtype == torch.float32 for m in masters)
    moments = [s["exp_avg"] for s in state["optimizer"]["state"].values()]
    assert moments and all(m.dtype == torch.float32 for m in moments)


def test_master_weights_keep_updates_bfloat16_would_round_away():
    """lr 1e-4 on weights of 1.0: every bfloat16 AdamW step rounds back to 1.0 (spacing
    2^-7 there); float32 masters accumulate the updates."""
    def run(optimizer_for):
        weight = torch.nn.Parameter(torch.ones(8, dtype=torch.bfloat16))
        optimizer = optimizer_for([weight])
        for _ in range(100):
            optimizer.zero_grad()
            (weight.float() * 1.0).sum().backward()
            optimizer.step()
        return weight.detach().float()

    plain = run(lambda ps: torch.optim.AdamW(ps, lr=1e-4, weight_decay=0.0))
    master = run(lambda ps: make_optimizer(ps, lr=1e-4, weight_decay=0.0))
    assert torch.equal(plain, torch.ones(8))
    assert torch.allclose(master, torch.full((8,), 1 - 100 * 1e-4), atol=2 ** -7)
    assert isinstance(make_optimizer([torch.nn.Parameter(torch.ones(2, dtype=torch.bfloat16))]), MasterWeightAdamW)
    assert type(make_optimizer([torch.nn.Parameter(torch.ones(2))])) is torch.optim.AdamW


def test_gradient_checkpointing_gives_the_same_gradients(micro_model):
    def grads(checkpointing):
        model, _ = load_model(micro_model, CPU)
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        ids = torch.arange(3, 40)[None]
        model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, checkpointed = grads(False), grads(True)
    assert plain.keys() == checkpointed.keys() and plain
    for name in plain:
        torch.testing.assert_close(plain[name], checkpointed[name], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_weights_for_vllm_merge_lora_out_of_place(micro_model, dtype):
    """What the vLLM engines are sent for a LoRA model is base + adapter (as PEFT merges
    it), and taking it leaves the model's own weights untouched, bfloat16 ones included."""
    from peft import LoraConfig, get_peft_model

    from agenthub.trainers.vllm_weights import hf_weights

    base, _ = load_model(micro_model, CPU, dtype)
    peft = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    before = {k: v.clone() for k, v in peft.state_dict().items()}
    sent = dict(hf_weights(peft))
    for _ in range(3):
        hf_weights(peft)
    assert all(torch.equal(before[k], v) for k, v in peft.state_dict().items())
    reference = dict(peft.merge_and_unload().state_dict())
    assert sent.keys() == reference.keys()
    for name in reference:
        torch.testing.assert_close(sent[name].float(), reference[name].float(), atol=1e-2 if dtype == torch.bfloat16
                                   else 1e-6, rtol=1e-2 if dtype == torch.bfloat16 else 1e-6)


def test_hf_agent_dtype_option(micro_model):
    from agenthub.agents import load_agent
    from agenthub.errors import AgentHubError

    agent = load_agent(f"hf:{micro_model}?dtype=bfloat16&mode=choice")
    assert {p.dtype for p in agent.engine.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in load_agent(f"hf:{micro_model}").engine.model.parameters()} == {torch.float32}
    with pytest.raises(AgentHubError, match="dtype must be auto, float32 or bfloat16, not 'fp8'"):
        load_agent(f"hf:{micro_model}?dtype=fp8")
