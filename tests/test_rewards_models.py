"""The model-backed reward modules with real torch/transformers models, trained here on
CPU: SPA's progress estimator on a synthetic task whose true per-step progress is
known, and IGPO with a tiny LM taught to answer once a clue is in its context."""

import math
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agenthub.cli import main  # noqa: E402
from agenthub.rewards import InformationGain, StepwiseProgress  # noqa: E402
from agenthub.trainers.answer_scorer import HFAnswerScorer  # noqa: E402
from agenthub.trainers.progress_estimator import ProgressEstimator, train_tokenizer  # noqa: E402
from agenthub.types import Trajectory, Turn, write_trajectories  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The test machine has 2 cores shared with other work: one torch thread per
    process trains these tiny models several times faster than two contending ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- SPA --------------------------------------------------------------------------

# only some kinds of action make progress; the outcome is the progress made
PROGRESS = {"take the key": 0.25, "unlock the door": 0.5, "climb the stairs": 0.25,
            "look around": 0.0, "wait": 0.0, "check inventory": 0.0, "sing a song": 0.0}
REPLIES = ["You see a dusty hallway.", "Nothing much changes.", "A cold wind blows.", "You hear 12 footsteps."]


def tower_episodes(n, seed):
    rng = random.Random(seed)
    episodes = []
    for i in range(n):
        turns = []
        for k in range(rng.randint(2, 8)):
            action = rng.choice(list(PROGRESS))
            observation = ([{"role": "system", "content": "Escape the tower."},
                            {"role": "user", "content": "You are in a locked room."}] if k == 0
                           else [{"role": "user", "content": rng.choice(REPLIES)}])
            components = {"invalid_action": 1.0} if action == "sing a song" else {}
            turns.append(Turn(observation, {"role": "assistant", "content": action},
                              reward_components=components, info={"true_progress": PROGRESS[action]}))
        outcome = sum(t.info["true_progress"] for t in turns)
        episodes.append(Trajectory("synthetic/tower-v0", f"tower#{seed}-{i}", i, "random", turns=turns,
                                   outcome=outcome, success=outcome >= 1.0))
    return episodes


@pytest.fixture(scope="module")
def estimator():
    estimator = ProgressEstimator.from_scratch(tower_episodes(200, seed=0))
    estimator.fit(tower_episodes(200, seed=0), epochs=4, progress=False)
    return estimator


def test_spa_contributions_match_true_progress_on_held_out_episodes(estimator):
    held_out = tower_episodes(100, seed=1)
    predicted = [c for per_turn in estimator.predict(held_out) for c in per_turn]
    true = [turn.info["true_progress"] for t in held_out for turn in t.turns]
    assert np.corrcoef(predicted, true)[0, 1] > 0.8


def test_spa_batched_inference_matches_one_at_a_time(estimator):
    episodes = tower_episodes(6, seed=2)
    together = estimator.predict(episodes)
    alone = [estimator.predict([t])[0] for t in episodes]
    assert [len(c) for c in together] == [len(t.turns) for t in episodes]
    for a, b in zip(together, alone):
        assert a == pytest.approx(b, abs=1e-5)


def test_spa_long_episodes_are_windowed(estimator):
    long = tower_episodes(1, seed=3)[0]
    long.turns = long.turns * 40  # far more than max_tokens
    small = ProgressEstimator(estimator.model.backbone, estimator.tokenizer, max_tokens=200,
                              max_prompt_tokens=40, max_message_tokens=20)
    small.model.head.load_state_dict(estimator.model.head.state_dict())
    assert len(small._encode([long])) > 1
    contributions = small.predict([long])[0]
    assert len(contributions) == len(long.turns) and all(math.isfinite(c) for c in contributions)
    # a turn's contribution sees its own window's prompt and turns: the first turns of
    # the first window match the unwindowed estimate
    head = tower_episodes(1, seed=3)[0]
    first = estimator.predict([head])[0]
    assert contributions[:2] == pytest.approx(first[:2], abs=1e-5)


def test_spa_reward_saves_loads_and_adds_grounding(estimator, tmp_path):
    estimator.save(tmp_path / "spa")
    episodes = tower_episodes(5, seed=4) + [Trajectory("synthetic/tower-v0", "empty", 0, "random")]
    contributions = estimator.predict(episodes)
    module = StepwiseProgress(str(tmp_path / "spa"), grounding=0.5)
    rewards = module(episodes)
    assert rewards[-1] == []
    for trajectory, per_turn, expected in zip(episodes, rewards, contributions):
        for turn, reward, c in zip(trajectory.turns, per_turn, expected):
            valid = "invalid_action" not in turn.reward_components
            assert reward == pytest.approx(c + (0.5 if valid else 0.0), abs=1e-5)
            assert turn.reward_components["spa/progress"] == pytest.approx(c, abs=1e-5)
            assert turn.reward_components["spa/grounding"] == (0.5 if valid else 0.0)
    assert 0 < module.metrics["spa/valid_rate"] < 1


def test_spa_backbone_from_a_local_model_directory(tmp_path):
    """Any local Hugging Face causal LM can be the backbone; its LM head is dropped."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    episodes = tower_episodes(24, seed=6)
    tokenizer = train_tokenizer([m["content"] for t in episodes for m in t.messages()], vocab_size=300)
    Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                 num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                                 max_position_embeddings=512)).save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    estimator = ProgressEstimator.from_backbone(tmp_path / "lm")
    assert estimator.max_tokens == 512  # capped by the model's positions
    losses = estimator.fit(episodes, epochs=2, progress=False)
    assert losses[-1] < losses[0]
    assert [len(c) for c in estimator.predict(episodes)] == [len(t.turns) for t in episodes]


def test_cli_train_progress_then_score(tmp_path, capsys):
    # in-process, to spare two interpreter starts that import torch and transformers
    path = tmp_path / "tower.jsonl"
    write_trajectories(path, tower_episodes(40, seed=5))
    assert main(["rewards", "train-progress", str(path), "--out", str(tmp_path / "spa"), "--epochs", "1"]) == 0
    assert "heldout_mse" in capsys.readouterr().out and (tmp_path / "spa" / "estimator.json").is_file()
    assert main(["rewards", "score", str(path), "--reward", f"{{name: spa, estimator: {tmp_path / 'spa'}}}",
                 "--reward", "gra", "--report", str(tmp_path / "report.html")]) == 0
    out = capsys.readouterr().out
    assert "spa/valid_rate" in out and "gra/gate_open_rate" in out
    assert (tmp_path / "report.html").read_text().count("<img") == 2


# --- IGPO -------------------------------------------------------------------------

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
COLOURS = ["red", "blue", "green", "amber", "violet", "silver", "golden", "crimson", "ivory", "teal", "olive",
           "coral"]
PLACES = ["garden", "desk", "attic", "cellar", "kitchen", "shelf"]
NOISE = ["Only dust here.", "You find an old shoe.", "It is too dark to see.", "A cat stares at you."]


def search(rng, clue_at, turns):
    """A search for the code word (crimson); the env's reply to turn `clue_at` reveals it."""
    messages = [{"role": "system", "content": "Find the code word."},
                {"role": "user", "content": "Where do you search?"}]
    for k in range(turns):
        messages.append({"role": "assistant", "content": f"search the {rng.choice(PLACES)}"})
        messages.append({"role": "user", "content": 'A note says the code word is "crimson".' if k == clue_at
                         else rng.choice(NOISE)})
    return messages


@pytest.fixture(scope="module")
def clue_reader():
    """A tiny LM that has learnt the code word only from clues: with the clue in its
    context it answers "crimson"; without it, it guesses among the colours."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    rng = random.Random(0)
    corpus = [CHATML] + COLOURS + [m["content"] for _ in range(200) for m in search(rng, 0, 3)]
    tokenizer = train_tokenizer(corpus, vocab_size=400, special_tokens=("<pad>", "<bos>", "<|im_start|>", "<|im_end|>"))
    tokenizer.chat_template = CHATML
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, max_position_embeddings=256, tie_word_embeddings=True))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        rows = []
        for _ in range(16):
            turns = rng.randint(0, 3)
            clue_at = rng.choice([None, *range(turns)])
            answer = "crimson" if clue_at is not None else rng.choice(COLOURS)
            prompt = tokenizer.apply_chat_template(search(rng, clue_at, turns), add_generation_prompt=True,
                                                   tokenize=False)
            rows.append((tokenizer(prompt)["input_ids"], tokenizer(answer)["input_ids"]))
        width = max(len(p) + len(a) for p, a in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        labels = torch.full((len(rows), width), -100)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for r, (p, a) in enumerate(rows):
            ids[r, :len(p) + len(a)] = torch.tensor(p + a)
            labels[r, len(p):len(p) + len(a)] = torch.tensor(a)
            mask[r, :len(p) + len(a)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, tokenizer


def search_episode():
    """Turn 1 finds nothing, turn 2's search reveals the code word, turn 3 answers."""
    m = search(random.Random(5), clue_at=1, turns=2)
    turns = [Turn(m[:2], m[2]), Turn([m[3]], m[4]),
             Turn([m[5]], {"role": "assistant", "content": "crimson"}, info={"ground_truth": "crimson"})]
    return Trajectory("synthetic/search-v0", "search", 0, "test", turns=turns, outcome=1.0, success=True)


def test_igpo_rewards_the_turn_that_reveals_the_clue(clue_reader):
    model, tokenizer = clue_reader
    model.train()
    for log_prob in (False, True):
        module = InformationGain(scorer=HFAnswerScorer(model, tokenizer), log_prob=log_prob)
        (nothing_found, clue_found, answer), = module([search_episode()])
        assert clue_found > nothing_found + 0.3
        assert answer == 1.0
    assert model.training  # the scorer gives the model back in the mode it found it in


def test_hf_scorer_batches_like_single_calls(clue_reader):
    model, tokenizer = clue_reader
    m = search(random.Random(7), clue_at=0, turns=2)
    contexts, answers = [m[:2], m[:4], m], ["crimson", "crimson", "a longer answer"]
    together = HFAnswerScorer(model, tokenizer, batch_size=3).answer_logprob(contexts, answers)
    alone = [HFAnswerScorer(model, tokenizer).answer_logprob([c], [a])[0] for c, a in zip(contexts, answers)]
    assert [n for _, n in together] == [n for _, n in alone]
    assert [lp for lp, _ in together] == pytest.approx([lp for lp, _ in alone], abs=1e-4)
    assert together[2][1] > 1 and together[1][0] > together[0][0]  # the clue raised the belief
