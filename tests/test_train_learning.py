"""RL itself learns: GRPO, RLOO and a G-RA (turn-level) run each take an untrained
from-scratch model, with no demonstrations, from below 30% to above 80% held-out success
on the synthetic lamp-corridor env (choice mode: the fresh model picks among the
admissible doors at random, and reward alone must teach it to read the lamp)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from agenthub.evaluation import evaluate  # noqa: E402
from agenthub.trainers.config import load_config  # noqa: E402
from agenthub.trainers.grpo import iter_metrics, train  # noqa: E402
from agenthub.trainers.model_init import corpus_from_envs, init_model  # noqa: E402
from agenthub.environments.toy import ENV_ID, SUITE, register_toy_env  # noqa: E402

MICRO = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, vocab_size=300)


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    register_toy_env()
    path = init_model(tmp_path_factory.mktemp("model") / "micro", "tiny", corpus_from_envs([ENV_ID], 20), **MICRO)
    before = evaluate(f"{SUITE}:test", f"hf:{path}?mode=choice", tmp_path_factory.mktemp("before"), episodes=50,
                      concurrency=50, progress=False)
    return path, before["success_rate"]


def rl_config(model, **settings):
    base = {"model": str(model), "suite": SUITE, "steps": 90, "seed": 0, "tensorboard": False,
            "rollout": {"mode": "choice", "group_size": 8, "tasks_per_step": 8, "concurrency": 64,
                        "max_new_tokens": 8, "max_context": 512},
            "optim": {"lr": 3e-3}, "eval": {"episodes": 50, "modes": ["choice"], "concurrency": 50}}
    return load_config(base=base, overrides=settings)


@pytest.mark.parametrize("settings", [
    {"algorithm.estimator": "grpo"},
    {"algorithm.estimator": "rloo"},
    {"reward": {"name": "gra", "threshold": 1.0}, "algorithm.turn_level": True, "algorithm.pooling": "joint"},
], ids=["grpo", "rloo", "gra-turn-level"])
def test_rl_raises_success_from_an_untrained_model(untrained, tmp_path, settings):
    model, before = untrained
    assert before < 0.3
    results = train(rl_config(model, **settings), tmp_path / "run", progress=False)
    assert results["choice"]["success_rate"] > 0.8, results["choice"]["success_rate"]
    # and the sampling policy itself improved, not only its greedy choice
    steps = [m for m in iter_metrics(tmp_path / "run" / "metrics.jsonl") if m.get("phase") == "rl"]
    assert sum(m["success_rate"] for m in steps[:10]) / 10 < 0.3
    assert sum(m["success_rate"] for m in steps[-10:]) / 10 > 0.8
