"""The training loop end to end on the synthetic lamp corridor with a micro model:
exact resume, SFT warm-start, the loss options, and the `agenthub train` / `eval` CLI."""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from safetensors.torch import load_file  # noqa: E402

from agenthub.trainers.config import load_config  # noqa: E402
from agenthub.trainers.grpo import train  # noqa: E402
from agenthub.trainers.model_init import corpus_from_envs, init_model  # noqa: E402
from agenthub.environments.toy import ENV_ID, SUITE, register_toy_env  # noqa: E402
from agenthub.types import read_trajectories  # noqa: E402
from agenthub.errors import AgentHubError  # noqa: E402
from agenthub.suites import load_suite  # noqa: E402


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    register_toy_env()
    texts = corpus_from_envs([ENV_ID, "tools/guess-number-v0"], 10)
    return init_model(tmp_path_factory.mktemp("model") / "micro", "tiny", texts, hidden_size=64,
                      intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                      vocab_size=400)


def config(model, **overrides):
    base = {"model": str(model), "suite": SUITE, "steps": 2, "tensorboard": False, "eval": None,
            "rollout": {"mode": "choice", "group_size": 4, "tasks_per_step": 2, "concurrency": 8,
                        "max_new_tokens": 8, "max_context": 512},
            "optim": {"lr": 1e-3, "schedule": "cosine", "warmup_steps": 1}}
    return load_config(base=base, overrides=overrides)


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_resume_after_step_k_matches_the_uninterrupted_run(micro, tmp_path):
    # one episode at a time, so the interrupted and the whole run batch identically
    cfg = config(micro, **{"steps": 3, "save_every": 1, "keep_checkpoints": 3, "rollout.concurrency": 1})
    whole = tmp_path / "whole"
    train(cfg, whole, progress=False)
    # the run directory as it was when stopped after step 2
    stopped = tmp_path / "stopped"
    shutil.copytree(whole, stopped)
    shutil.rmtree(stopped / "checkpoints" / "step-000003")
    shutil.rmtree(stopped / "model")
    train(cfg, stopped, resume=True, progress=False)
    expected = load_file(whole / "checkpoints" / "step-000003" / "model.safetensors")
    resumed = load_file(stopped / "checkpoints" / "step-000003" / "model.safetensors")
    step2 = load_file(whole / "checkpoints" / "step-000002" / "model.safetensors")
    assert not all(torch.equal(step2[k], expected[k]) for k in expected)  # step 3 changed the weights
    assert all(torch.equal(resumed[k], expected[k]) for k in expected)
    with pytest.raises(Exception, match="already holds a run"):
        train(cfg, whole, progress=False)


def test_rl_plays_only_the_train_tasks_in_its_range(micro, tmp_path):
    all_seeds = {t.seed for t in load_suite(SUITE, "train")}
    train(config(micro, **{"rollout.task_range": [2, 4], "rollout.tasks_per_step": 4}), tmp_path / "run",
          progress=False)
    played = {t.seed for step in (1, 2) for t in read_trajectories(tmp_path / "run" / "rollouts" /
                                                                     f"step-00000{step}.jsonl")}
    assert played == {t.seed for t in load_suite(SUITE, "train")[2:4]} and len(all_seeds) > 4
    with pytest.raises(AgentHubError, match=r"no train tasks in rollout.task_range \[10000, 10001\]"):
        train(config(micro, **{"rollout.task_range": [10000, 10001]}), tmp_path / "empty", progress=False)


def test_sft_on_oracle_demonstrations_imitates_the_commands(micro, tmp_path):
    """SFT alone teaches the micro model the commands' form (it writes admissible
    commands instead of noise); reading the lamps is what RL teaches it (test_train_learning)."""
    def valid_share(run):
        turns = [turn for t in read_trajectories(run / "eval" / "free" / "trajectories.jsonl") for turn in t.turns]
        return sum(turn.action["content"] in ("go red", "go blue") for turn in turns) / len(turns)

    eval_settings = {"episodes": 30, "modes": ["free"], "concurrency": 30}
    untrained = config(micro, **{"steps": 0, "eval": eval_settings})
    train(untrained, tmp_path / "untrained", progress=False)
    cfg = config(micro, **{"steps": 0, "sft": {"tasks": 100, "epochs": 3, "batch_size": 16, "lr": 3e-3},
                           "eval": eval_settings})
    train(cfg, tmp_path / "run", progress=False)
    assert valid_share(tmp_path / "untrained") < 0.1 < 0.9 < valid_share(tmp_path / "run")
    sft = [m for m in metrics(tmp_path / "run") if m.get("phase") == "sft"]
    assert sft[-1]["loss"] < sft[0]["loss"] / 2
    assert (tmp_path / "run" / "sft" / "config.json").exists() and (tmp_path / "run" / "report.html").exists()


def test_sft_context_weight_adds_the_env_tokens_at_that_weight(micro):
    from agenthub.trainers.chat import ChatFormat
    from agenthub.trainers.checkpoint import load_model
    from agenthub.trainers.config import SFTConfig
    from agenthub.trainers.sft import demonstration_sequences, demonstrations

    _, tokenizer = load_model(micro, "cpu")
    demos = demonstrations(SFTConfig(tasks=4), SUITE, progress=False)
    plain = demonstration_sequences(demos, ChatFormat(tokenizer), 512)
    reading = demonstration_sequences(demos, ChatFormat(tokenizer), 512, context_weight=0.2)
    assert len(plain) == len(reading) == 4
    for p, r in zip(plain, reading):
        assert p.ids == r.ids and 0 < sum(p.mask) < len(p.mask) and all(r.mask)
        assert p.advantages == [float(m) for m in p.mask]  # assistant tokens only, weight 1
        assert r.advantages == [1.0 if m else 0.2 for m in p.mask]


def test_server_engine_without_a_server_url_is_one_clear_error(micro, tmp_path):
    from agenthub.errors import AgentHubError

    with pytest.raises(AgentHubError, match="needs rollout.server=URL"):
        train(config(micro, **{"rollout.engine": "vllm-server"}), tmp_path / "run", progress=False)


def test_loss_options_lora_kl_tis_dr_grpo_minibatches(micro, tmp_path):
    cfg = config(micro, **{"algorithm.estimator": "dr_grpo", "loss.aggregation": "seq-mean-token-sum-norm",
                           "loss.norm_length": 16, "loss.kl_coef": 0.05, "loss.tis_cap": 2.0, "loss.epochs": 2,
                           "loss.minibatches": 2, "loss.micro_batch": 2, "lora": {"r": 4, "alpha": 8},
                           "gradient_checkpointing": True, "rollout.tasks_per_step": 4})
    train(cfg, tmp_path / "run", progress=False)
    rl = [m for m in metrics(tmp_path / "run") if m.get("phase") == "rl"]
    updated = [m for m in rl if m["sequences"]]
    assert updated, rl
    for m in updated:
        assert 0 < m["tis_weight"] <= 2.0 and m["kl"] >= 0 and m["grad_norm"] > 0
    peaks = [m["peak_memory_gb"] for m in rl]  # CPU: the process's peak RSS, which never shrinks
    assert 0.1 < peaks[0] <= peaks[-1] < 64
    from transformers import AutoModelForCausalLM
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model")  # LoRA saved merged
    assert not any("lora" in name for name, _ in merged.named_parameters())


def test_train_and_eval_cli(micro, tmp_path, cli):
    path = tmp_path / "guess.yaml"
    path.write_text(f"model: {micro}\nsuite: tools/guess-number\nsteps: 1\ntensorboard: false\n"
                    "rollout: {group_size: 2, tasks_per_step: 2, max_new_tokens: 6}\n"
                    "eval: {episodes: 2, modes: [free, choice]}\n")
    r = cli("train", str(path), "--out", str(tmp_path / "run"), "optim.lr=1e-4")
    assert r.returncode == 0, r.stderr
    assert "held-out success (choice)" in r.stdout
    assert (tmp_path / "run" / "model" / "config.json").exists()
    assert (tmp_path / "run" / "checkpoints" / "step-000001" / "trainer_state.pt").exists()
    r = cli("eval", "tools/guess-number:test", "--episodes", "2", "--agent", f"hf:{tmp_path}/run/model?mode=choice",
            "--out", str(tmp_path / "eval"), "--json")
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)
    assert results["episodes"] == 2 and results["agent"].endswith("(choice)") and results["errors"] == 0
    bad = cli("train", str(path), "rollout.tempreture=1")
    assert bad.returncode == 2 and "did you mean 'temperature'" in bad.stderr and "Traceback" not in bad.stderr
    bad = cli("eval", "tools/guess-number:test", "--agent", f"hf:{tmp_path}/run/model?mode=beam")
    assert bad.returncode == 2 and "mode must be 'free' or 'choice'" in bad.stderr
