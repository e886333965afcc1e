"""The history window (`rollout.history`, `hf:...?history=K`): the policy sees the
opening messages and the last K exchanges; SFT makes one example per demonstrated step
with loss on its command only; a windowed rollout trains each turn on exactly the ids
it was sampled from; the agent option is parsed and bad values get one clear line."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agenthub.agents.oracle import OracleAgent  # noqa: E402
from agenthub.environments.toy import ENV_ID, register_toy_env  # noqa: E402
from agenthub.errors import AgentHubError  # noqa: E402
from agenthub.runner import Episode, run_episodes  # noqa: E402
from agenthub.trainers.batch import action_logprobs, collate, trajectory_sequence, trajectory_sequences  # noqa: E402
from agenthub.trainers.chat import ChatFormat  # noqa: E402
from agenthub.trainers.checkpoint import POLICY_FILE, load_model, policy_settings  # noqa: E402
from agenthub.trainers.engine import HFEngine  # noqa: E402
from agenthub.trainers.history import WINDOW, window  # noqa: E402
from agenthub.trainers.model_agents import HFAgent  # noqa: E402
from agenthub.trainers.model_init import corpus_from_envs, init_model  # noqa: E402
from agenthub.trainers.policy import PolicyAgent  # noqa: E402
from agenthub.trainers.sft import demonstration_sequences  # noqa: E402


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    register_toy_env()
    return init_model(tmp_path_factory.mktemp("model") / "micro", "tiny", corpus_from_envs([ENV_ID], 10),
                      hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, vocab_size=300)


@pytest.fixture(scope="module")
def demos(micro):
    # 5 rooms: 5 steps, so windows of 1 and 2 exchanges really cut the conversation
    return run_episodes([Episode(ENV_ID, s, 0, {"rooms": 5}) for s in range(3)], OracleAgent(), concurrency=1)


def chat_of(micro):
    return ChatFormat(load_model(str(micro), "cpu")[1])


def conversation(exchanges: int) -> list[dict]:
    msgs = [{"role": "system", "content": "sys"}, {"role": "user", "content": "goal"}]
    for i in range(exchanges):
        msgs += [{"role": "assistant", "content": f"a{i}"}, {"role": "user", "content": f"o{i}"}]
    return msgs


@pytest.mark.parametrize("exchanges,history,kept", [
    (5, None, ["sys", "goal", "a0", "o0", "a1", "o1", "a2", "o2", "a3", "o3", "a4", "o4"]),
    (5, 2, ["sys", "goal", "a3", "o3", "a4", "o4"]),
    (5, 1, ["sys", "goal", "a4", "o4"]),
    (5, 0, ["sys", "o4"]),  # the current observation alone
    (0, 0, ["sys", "goal"]),  # the first turn's current observation is the opening
    (1, 3, ["sys", "goal", "a0", "o0"]),  # fewer exchanges than the window: all of them
    (0, 2, ["sys", "goal"]),
])
def test_window_keeps_the_opening_and_the_last_exchanges(exchanges, history, kept):
    assert [m["content"] for m in window(conversation(exchanges), history)] == kept


def test_sft_makes_one_example_per_step_with_loss_on_the_command_only(micro, demos):
    chat = chat_of(micro)
    for history in (1, 2):
        sequences = demonstration_sequences(demos, chat, 4096, history=history)
        steps = [(t, i) for t in demos for i, m in enumerate(t.messages()) if m["role"] == "assistant"]
        assert len(sequences) == len(steps) == 15
        for seq, (t, i) in zip(sequences, steps):
            messages = t.messages()
            prompt = chat.prompt(window(messages[:i], history), None)
            assert seq.ids[:len(prompt)] == prompt  # exactly what the policy sees at that step
            learned = [x for x, m in zip(seq.ids, seq.mask) if m]
            assert chat.decode(learned) == messages[i]["content"]  # the command, nothing else
            assert learned[-1] == chat.eos_id and seq.mask[:len(prompt)] == [0] * len(prompt)
            assert seq.advantages == [float(m) for m in seq.mask]
    # the whole-chat default is unchanged: one sequence per demonstration
    assert len(demonstration_sequences(demos, chat, 4096)) == len(demos)


def test_sft_rejects_a_negative_window(micro, demos):
    with pytest.raises(AgentHubError, match="history must be"):
        demonstration_sequences(demos, chat_of(micro), 4096, history=-1)


@pytest.mark.parametrize("mode", ["free", "choice"])
def test_a_windowed_rollout_trains_each_turn_on_exactly_its_sampled_ids(micro, mode):
    model, tokenizer = load_model(str(micro), "cpu")
    engine = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id)
    agent = PolicyAgent(engine, tokenizer, mode=mode, temperature=1.0, max_new_tokens=6, history=1, seed=3)
    # an untrained policy: free text is mostly not a door, so episodes run several turns
    trajectories = run_episodes([Episode(ENV_ID, s, 0, {"rooms": 5, "doors": 4}) for s in range(4)], agent,
                                concurrency=2)
    chat = ChatFormat(tokenizer)
    checked = 0
    for t in trajectories:
        sequences = trajectory_sequences(t, [1.0] * len(t.turns))
        assert len(sequences) == len(t.turns)
        messages: list[dict] = []
        for turn, seq in zip(t.turns, sequences):
            messages += turn.observation
            assert turn.token_layout == WINDOW
            assert turn.prompt_token_ids == chat.prompt(window(messages, 1), None)
            assert seq.ids == turn.prompt_token_ids + turn.token_ids
            assert [x for x, m in zip(seq.ids, seq.mask) if m] == turn.token_ids
            messages.append(turn.action)
            checked += 1
        if len(t.turns) > 1:
            with pytest.raises(ValueError, match="trajectory_sequences"):
                trajectory_sequence(t, [1.0] * len(t.turns))
    assert checked >= 4
    # the trainer's log-probabilities of those sequences are the ones sampled
    sequences = [s for t in trajectories for s in trajectory_sequences(t, [1.0] * len(t.turns))]
    batch = collate(sequences, tokenizer.pad_token_id)
    with torch.no_grad():
        logp, _ = action_logprobs(model, batch)
    assert torch.allclose(logp, batch.rollout_logprobs, atol=1e-4)


def test_the_agent_option_is_parsed_and_checked(micro):
    assert HFAgent(f"{micro}?history=2&mode=choice").history == 2
    assert HFAgent(str(micro)).history is None
    assert HFAgent(str(micro), history=0).history == 0
    for bad, words in (("-1", "history must be a whole number"), ("two", "not a valid int"),
                       ("1.5", "not a valid int")):
        with pytest.raises(AgentHubError, match=words) as e:
            HFAgent(f"{micro}?history={bad}")
        assert "\n" not in str(e.value)


def test_grpo_with_a_window_trains_one_sequence_per_turn(micro, tmp_path):
    from agenthub.environments.toy import SUITE
    from agenthub.trainers.config import load_config
    from agenthub.trainers.grpo import iter_metrics, train
    from agenthub.types import read_trajectories

    cfg = load_config(base={"model": str(micro), "suite": SUITE, "steps": 1, "tensorboard": False, "eval": None,
                            "rollout": {"mode": "choice", "group_size": 4, "tasks_per_step": 2, "concurrency": 2,
                                        "max_new_tokens": 6, "history": 1}, "optim": {"lr": 1e-3}})
    train(cfg, tmp_path / "run")
    rl = [m for m in iter_metrics(tmp_path / "run" / "metrics.jsonl") if m.get("phase") == "rl"]
    rollouts = read_trajectories(tmp_path / "run" / "rollouts" / "step-000001.jsonl")
    assert len(rl) == 1 and len(rollouts) == 8
    assert all(turn.token_layout == WINDOW for t in rollouts for turn in t.turns)
    # each group whose rewards differ trains: one sequence per turn of each of its rollouts
    groups = [rollouts[i:i + 4] for i in range(0, 8, 4)]
    trained = [g for g in groups if len({t.outcome for t in g}) > 1]
    assert trained and max(len(t.turns) for t in rollouts) > 1  # seeded: some groups learn, over several turns
    assert rl[0]["sequences"] == sum(len(t.turns) for g in trained for t in g)
    # the saved model remembers its window: `hf:DIR` acts as training did, unless told otherwise
    for saved in (tmp_path / "run" / "model", tmp_path / "run" / "checkpoints" / "step-000001"):
        assert policy_settings(saved) == {"history": 1, "max_new_tokens": 6, "tool_parser": None}
        agent = HFAgent(str(saved))
        assert (agent.history, agent.max_new_tokens) == (1, 6)
        assert HFAgent(f"{saved}?history=3", history=None).history == 3


@pytest.mark.parametrize("text", ["", "[1]", "{", '{"history": "all"}', '{"history": -1}', '{"history": true}',
                                  '{"max_new_tokens": 0}', '{"tool_parser": 5}', '{"tool_parser": "nope"}',
                                  '{"history": 1.5}'])
def test_a_broken_policy_file_is_ignored_setting_by_setting(micro, tmp_path, text):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(micro, model)
    (model / POLICY_FILE).write_text(text + "\n")
    assert policy_settings(model) == {}
    assert HFAgent(str(model)).history is None  # loads, with the defaults
    (model / POLICY_FILE).write_text('{"history": 2, "max_new_tokens": "x", "other": 1}')
    assert policy_settings(model) == {"history": 2}
