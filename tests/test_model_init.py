"""From-scratch models and token-in-token-out rollouts, with the real tokenizer and model."""

import json
import threading

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import agenthub  # noqa: E402
from agenthub.runner import Episode, run_episodes  # noqa: E402
from agenthub.trainers.chat import ChatFormat  # noqa: E402
from agenthub.trainers.checkpoint import load_model  # noqa: E402
from agenthub.trainers.engine import HFEngine  # noqa: E402
from agenthub.trainers.model_init import corpus_from_envs, init_model  # noqa: E402
from agenthub.trainers.policy import PolicyAgent  # noqa: E402
from agenthub.environments.toy import ENV_ID, register_toy_env  # noqa: E402

GUESS = "tools/guess-number-v0"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    register_toy_env()
    texts = corpus_from_envs([ENV_ID, GUESS], episodes=10)
    return init_model(tmp_path_factory.mktemp("m") / "micro", "tiny", texts, hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, vocab_size=400)


def test_init_writes_a_hugging_face_model_that_vllm_could_serve(model_dir):
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    config = model.config
    assert config.model_type == "qwen2"
    assert config.head_dim >= 32 and config.hidden_size // config.num_attention_heads >= 32
    assert config.vocab_size >= len(tokenizer)
    assert tokenizer.eos_token == "<|im_end|>" and config.eos_token_id == tokenizer.eos_token_id
    # byte-level: any text round-trips, no unknown tokens
    text = "Ünïcode ✓ take the rusty key from the chest"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert len(tokenizer.tokenize("<tool_call>")) == 1
    meta = json.loads((model_dir / "agenthub_model.json").read_text())
    assert meta["parameters"] == sum(p.numel() for p in model.parameters())


def test_chat_template_renders_tools_and_tool_calls_that_parse_back(model_dir):
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    env = agenthub.make(GUESS)
    obs, _ = env.reset(seed=3)
    call = env.oracle_actions()[0]
    text = tokenizer.apply_chat_template(obs + [call], tools=env.tools, tokenize=False)
    assert '"name": "guess"' in text.split("<|im_end|>")[0]  # the tool spec in the system turn
    assistant = text.rsplit("<|im_start|>assistant\n", 1)[1].removesuffix("<|im_end|>")
    parsed = agenthub.parse_action(assistant, env.tools)
    assert parsed.ok and parsed.calls[0].name == "guess"
    assert parsed.calls[0].arguments == json.loads(call["tool_calls"][0]["function"]["arguments"])


@pytest.mark.parametrize("env_id", [ENV_ID, GUESS])
def test_rollout_ids_are_the_sampled_ids_and_match_the_chat_template(model_dir, env_id):
    """Choice mode appends canonical tokens, so the incrementally built ids must equal
    apply_chat_template on the whole conversation, turn by turn (the debug check) and
    at the end."""
    model, tokenizer = load_model(model_dir, torch.device("cpu"))
    agent = PolicyAgent(HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id), tokenizer,
                        mode="choice", temperature=1.0, check_tokens=True)
    trajectories = run_episodes([Episode(env_id, seed) for seed in range(6)], agent, concurrency=6)
    chat, tools = ChatFormat(tokenizer), agenthub.make(env_id).tools
    assert agent.token_mismatches == 0
    for t in trajectories:
        assert t.stop_reason in ("terminated", "max_turns"), t.error
        ids = [i for turn in t.turns for i in turn.prompt_token_ids + turn.token_ids]
        conversation = t.messages()[:len(t.messages()) - len(t.final_observation)]
        assert ids == chat.encode(chat.render(conversation, tools, False))
        for turn in t.turns:
            assert turn.token_ids[-1] == tokenizer.eos_token_id
            assert len(turn.logprobs) == len(turn.token_ids) and all(lp <= 0 for lp in turn.logprobs)
            assert tokenizer.decode(turn.token_ids, skip_special_tokens=True) == turn.action["content"]


def test_free_generation_keeps_sampled_ids_and_tokenizes_only_new_messages(model_dir):
    model, tokenizer = load_model(model_dir, torch.device("cpu"))
    agent = PolicyAgent(HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id), tokenizer,
                        mode="free", temperature=1.0, max_new_tokens=6)
    [t] = run_episodes([Episode(ENV_ID, 0)], agent)
    chat = ChatFormat(tokenizer)
    assert t.turns, t.error
    for k, turn in enumerate(t.turns):
        assert len(turn.token_ids) <= 6
        if k == 0:
            assert turn.prompt_token_ids == chat.prompt(turn.observation, [])
        else:  # only the env's new message (plus end-of-turn if the last turn was cut off)
            previous = t.turns[k - 1]
            cut = [] if previous.token_ids[-1] == tokenizer.eos_token_id else [tokenizer.eos_token_id]
            delta = tokenizer.decode(turn.prompt_token_ids[len(cut):])
            assert turn.prompt_token_ids[:len(cut)] == cut
            assert delta == "\n<|im_start|>user\n" + turn.observation[0]["content"] + \
                "<|im_end|>\n<|im_start|>assistant\n"


def test_cached_batched_greedy_generation_matches_a_plain_forward_pass(model_dir):
    """The engine's shortcuts (left-padded batches, stored key/value prefixes reused
    across turns) must not change what the model says: every greedy token is the argmax,
    and every logprob the value, of one uncached forward pass over the whole episode.
    Two envs with prompts of different lengths share the batches, so rows are padded."""
    model, tokenizer = load_model(model_dir, torch.device("cpu"))
    agent = PolicyAgent(HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id), tokenizer,
                        mode="free", max_new_tokens=8)
    trajectories = run_episodes([Episode(env_id, seed) for seed in range(4) for env_id in (GUESS, ENV_ID)], agent,
                                concurrency=8)
    turns = 0
    for t in trajectories:
        assert len(t.turns) > 1, t.error
        ids, actions = [], []
        for turn in t.turns:
            ids += turn.prompt_token_ids
            actions += [(len(ids) + i, token, lp) for i, (token, lp) in enumerate(zip(turn.token_ids, turn.logprobs))]
            ids += turn.token_ids
            turns += 1
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
        for position, token, recorded in actions:
            row = logp[position - 1]
            assert row[token] >= row.max() - 1e-4
            assert abs(float(row[token]) - recorded) < 1e-4  # float noise is ~1e-6; a padding slip, 1e-3
    assert turns > 12


def test_model_init_cli(cli, tmp_path):
    out = tmp_path / "tiny"
    r = cli("model", "init", str(out), "--size", "tiny", "--episodes", "3")
    assert r.returncode == 0, r.stderr
    assert "M parameters" in r.stdout
    model = transformers.AutoModelForCausalLM.from_pretrained(out)
    assert 2e6 < sum(p.numel() for p in model.parameters()) < 5e6
    again = cli("model", "init", str(out))
    assert again.returncode == 2 and "already holds a model" in again.stderr


class _Continuous:
    """An engine that says it batches concurrent calls itself (as vLLM does): it counts the
    prompts per call and how many calls overlap."""

    continuous = True

    def __init__(self, engine):
        self.engine, self.eos_token_id = engine, engine.eos_token_id
        self.sizes, self.in_flight, self.most = [], 0, 0
        self.lock, self.engine_lock = threading.Lock(), threading.Lock()

    def generate(self, prompts, seeds, **options):
        with self.lock:
            self.sizes.append(len(prompts))
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            with self.engine_lock:  # the HF engine itself is not made for concurrent calls
                return self.engine.generate(prompts, seeds, **options)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_a_continuous_engine_gets_each_turn_from_its_episodes_thread(model_dir):
    """With an engine that batches concurrent calls itself, the agent sends each turn as
    it comes, from the episode's own thread, rather than gathering batches: the episodes
    are the same as through the agent's batcher."""
    model, tokenizer = load_model(model_dir, torch.device("cpu"))
    hf = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id)
    engine = _Continuous(hf)
    episodes = [Episode(env_id, seed) for seed in range(3) for env_id in (GUESS, ENV_ID)]
    got = run_episodes(episodes, PolicyAgent(engine, tokenizer, mode="free", max_new_tokens=8), concurrency=6)
    batched = run_episodes(episodes, PolicyAgent(hf, tokenizer, mode="free", max_new_tokens=8), concurrency=6)
    assert set(engine.sizes) == {1} and engine.most > 1
    assert [[turn.token_ids for turn in t.turns] for t in got] == [[turn.token_ids for turn in t.turns] for t in batched]
