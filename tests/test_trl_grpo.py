"""agenthub envs under TRL's own GRPOTrainer (issue 17 item 1).

Two real optimizer steps of `trl.GRPOTrainer` with `environment_factory`, on a micro
from-scratch model warm-started (a few SFT steps, as `make demo` does on oracle
trajectories) to open each episode with the oracle's first tool call: so the env's tools
are really called, and the rewards TRL logs are the env's returns.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl", reason="TRL is not installed (pip install 'agenthub[trl]')")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from transformers.utils import get_json_schema  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

import agenthub  # noqa: E402
from agenthub.errors import AgentHubError  # noqa: E402
from agenthub.integrations.trl import (  # noqa: E402
    AgentHubEnvironment, TRLEnvironments, prepare_tokenizer, reward_function, trl_environments)
from agenthub.rewards import GatedAccumulation, TurnLevel  # noqa: E402
from agenthub.types import tool_spec  # noqa: E402


def _tool_schemas(envs: TRLEnvironments) -> list[dict[str, Any]]:
    instance = envs.factory()  # type: ignore[operator]
    names = [n for n in vars(type(instance)) if not n.startswith("_") and n not in ("reset", "get_reward")
             and callable(getattr(instance, n))]
    return [get_json_schema(getattr(instance, n)) for n in names]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A from-scratch micro model whose tokenizer is fitted to both envs' prompts and tool
    calls (short sequences: the warm start and the trainer steps stay fast on a CPU)."""
    from agenthub.trainers.model_init import init_model

    texts = [f'<tool_call>{{"name": "{tool}", "arguments": {{"{arg}": {value}}}}}</tool_call>'
             for tool, arg, value in (("guess", "number", 32), ("act", "command", '"open the chest"'))]
    texts += [m["content"] for r in trl_environments("tools/guess-number-v0", episodes=2).dataset for m in r["prompt"]]
    if _has_textworld():
        envs = trl_environments("textworld/w2-o3-q4", episodes=1, env_kwargs={"tool_mode": True})
        texts += [m["content"] for m in envs.dataset[0]["prompt"]] + [json.dumps(_tool_schemas(envs))]
    return init_model(tmp_path_factory.mktemp("trl") / "micro", "tiny", texts * 4, hidden_size=64,
                      intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                      vocab_size=1024)


def _warm_start(model_dir: Path, envs: TRLEnvironments, first_call: dict[str, Any], steps: int = 150) -> Any:
    """Teach the model the oracle's first tool call after each prompt (plain SFT)."""
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(model_dir, padding_side="left"))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tools = _tool_schemas(envs)
    batches = []
    for row in envs.dataset:
        prompt = tokenizer.apply_chat_template(row["prompt"], tools=tools, add_generation_prompt=True, tokenize=False)
        call = {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": first_call}]}
        full = tokenizer.apply_chat_template(row["prompt"] + [call], tools=tools, tokenize=False)
        assert full.startswith(prompt)
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = p_ids + tokenizer(full[len(prompt):].rstrip("\n"), add_special_tokens=False)["input_ids"]
        labels = [-100] * len(p_ids) + ids[len(p_ids):]
        batches.append((torch.tensor([ids]), torch.tensor([labels])))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(steps):
        ids, labels = batches[step % len(batches)]
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < 0.05, f"warm start did not learn the tool call (loss {loss.item():.2f})"
    return model, tokenizer


def _train(model: Any, tokenizer: Any, envs: TRLEnvironments, out: Path, reward_funcs: list[Any]) -> list[dict]:
    config = GRPOConfig(
        output_dir=str(out), report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
        use_cpu=True, bf16=False, seed=0, max_steps=2, per_device_train_batch_size=2, num_generations=2,
        max_completion_length=48, max_tool_calling_iterations=1, temperature=0.7, beta=0.0,
        learning_rate=1e-4, shuffle_dataset=False)
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=config, train_dataset=envs.dataset,
                          environment_factory=envs.factory, reward_funcs=reward_funcs)
    try:
        trainer.train()
    finally:
        envs.close()
    return [h for h in trainer.state.log_history if "loss" in h]


def _assert_env_rewards(logs: list[dict], envs: TRLEnvironments, column: str, tool: str) -> None:
    assert len(logs) == 2 and len(envs.history) == 4, (logs, len(envs.history))
    for log, step in zip(logs, (envs.history[:2], envs.history[2:])):
        # sampling may garble a call now and then; each step still has rollouts that reached the env
        assert any(any(c["function"]["name"] == tool for t in traj.turns for c in t.action.get("tool_calls", []))
                   for traj in step), "the env's tool was not called"
        assert math.isclose(log[f"rewards/{column}/mean"], sum(t.return_ for t in step) / 2, abs_tol=1e-6)
        assert log["tools/call_frequency"] >= 0.5
        assert math.isfinite(log["loss"])


def test_guess_number_trains_under_trl_grpo_with_env_owned_rewards(model_dir, tmp_path):
    envs = trl_environments("tools/guess-number-v0", episodes=2)
    model, tokenizer = _warm_start(model_dir, envs, {"name": "guess", "arguments": {"number": 32}})
    turn_level = reward_function(TurnLevel())
    logs = _train(model, tokenizer, envs, tmp_path / "run", [turn_level])
    _assert_env_rewards(logs, envs, "tools/guess-number-v0", "guess")
    # guessing 32 in [1, 64] halves the range: the env's dense reward, not the model's text
    assert all(t.turns[0].reward > 0.4 for t in envs.history if t.turns)
    # the reward module scored the same episodes (TurnLevel = the env's immediate rewards)
    for log, step in zip(logs, (envs.history[:2], envs.history[2:])):
        assert math.isclose(log["rewards/turn/mean"], sum(t.return_ for t in step) / 2, abs_tol=1e-6)
        assert all("turn/total" in t.turns[0].reward_components for t in step if t.turns)


def test_textworld_suite_trains_under_trl_grpo(model_dir, tmp_path):
    pytest.importorskip("textworld", reason="TextWorld is not installed (pip install 'agenthub[textworld]')")
    envs = trl_environments("textworld/w2-o3-q4", episodes=1, env_kwargs={"tool_mode": True})
    env = agenthub.make("textworld/w2-o3-q4-v0", tool_mode=True)
    env.reset(seed=envs.dataset[0]["seed"])
    first = json.loads(env.unwrapped.oracle_actions()[0]["tool_calls"][0]["function"]["arguments"])
    env.close()
    model, tokenizer = _warm_start(model_dir, envs, {"name": "act", "arguments": first})
    logs = _train(model, tokenizer, envs, tmp_path / "run", [reward_function(GatedAccumulation(threshold=1.0))])
    _assert_env_rewards(logs, envs, "textworld/w2-o3-q4-v0", "act")
    played = [t for t in envs.history if t.turns]
    assert any(t.turns[0].action["tool_calls"][0]["function"]["arguments"] == json.dumps(first) for t in played)
    assert all("invalid_action" in t.turns[0].reward_components for t in played)


# -- the adapter without the trainer --------------------------------------------------------

def test_text_env_is_played_through_an_act_tool():
    """A env with no tools gets `act(text)`, stepped as the assistant's text."""
    envs = trl_environments("textworld/w2-o3-q4", episodes=1) if _has_textworld() else None
    if envs is None:
        pytest.skip("TextWorld is not installed")
    instance = envs.factory()  # type: ignore[operator]
    assert get_json_schema(instance.act)["function"]["parameters"]["required"] == ["text"]
    assert instance.reset(**envs.dataset[0]) is None
    answer = instance.act(text="look")
    assert answer and not answer.startswith("Error")
    assert instance._trajectory.turns[0].action == {"role": "assistant", "content": "look"}
    envs.close()


def _has_textworld() -> bool:
    return importlib.util.find_spec("textworld") is not None


@pytest.mark.parametrize("arguments", [{}, {"number": "seven"}, {"number": 3, "extra": [1]}, {"nmber": 5}])
def test_malformed_tool_arguments_answer_with_an_error_observation(arguments):
    envs = trl_environments("tools/guess-number-v0", episodes=1)
    instance = envs.factory()  # type: ignore[operator]
    assert instance.guess(number=1).startswith("Error")  # before reset: no episode
    # a row without a prompt: the env's reset text is the prompt TRL appends
    assert "`guess` tool" in instance.reset(**{k: v for k, v in envs.dataset[0].items() if k != "prompt"})
    answer = instance.guess(**arguments)
    assert isinstance(answer, str) and answer
    assert instance.get_reward() == envs.history[-1].return_
    envs.close()


def test_finished_episode_takes_no_more_actions_and_reward_is_the_return():
    envs = trl_environments("tools/guess-number-v0", episodes=1, env_reward="outcome")
    instance: AgentHubEnvironment = envs.factory()  # type: ignore[operator]
    instance.reset(**envs.dataset[0])
    env = agenthub.make("tools/guess-number-v0")
    env.reset(seed=envs.dataset[0]["seed"])
    for action in env.unwrapped.oracle_actions():
        instance.guess(**json.loads(action["tool_calls"][0]["function"]["arguments"]))
    env.close()
    assert instance.guess(number=1) == "Error: the episode is over; nothing more happens."
    assert instance.get_reward() == 1.0
    trajectory = envs.history[-1]
    assert trajectory.success and trajectory.stop_reason == "terminated" and trajectory.outcome == 1.0
    envs.close()


def test_reward_function_groups_rollouts_by_task():
    """Gated accumulation pays dense rewards only to the group's winners."""
    envs = trl_environments("tools/guess-number-v0", episodes=2)
    instances = [envs.factory() for _ in range(4)]  # type: ignore[operator]
    rows = [envs.dataset[0], envs.dataset[0], envs.dataset[1], envs.dataset[1]]
    for instance, row in zip(instances, rows):
        instance.reset(**row)
    env = agenthub.make("tools/guess-number-v0")
    env.reset(seed=rows[0]["seed"])
    for action in env.unwrapped.oracle_actions():  # rollout 0 wins task 0
        instances[0].guess(**json.loads(action["tool_calls"][0]["function"]["arguments"]))
    env.close()
    for instance in instances[1:]:
        instance.guess(number=32)
    scores = reward_function(GatedAccumulation(threshold=1.0))(environments=instances + ["not ours"])
    assert math.isclose(scores[0], instances[0]._trajectory.return_ + 1.0)
    assert scores[1:4] == [0.0, 0.0, 0.0] and scores[4] is None
    with pytest.raises(AgentHubError):
        reward_function(TurnLevel())(completions=["x"])
    envs.close()


@pytest.mark.parametrize("spec", [
    tool_spec("reset", "clash", {"x": {"type": "string"}}),
    tool_spec("_hidden", "private", {"x": {"type": "string"}}),
    tool_spec("search", "bad argument name", {"max-results": {"type": "integer"}}),
])
def test_tools_trl_cannot_expose_are_refused_clearly(spec):
    from agenthub.integrations.trl import _tool_method

    with pytest.raises(AgentHubError):
        _tool_method(spec)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"episodes": 0}, "episodes"), ({"episodes": -3}, "episodes"), ({"episodes": True}, "episodes"),
    ({"seed": -1}, "seed"), ({"episodes": 2.5}, "episodes"),
])
def test_bad_counts_are_one_clear_error(kwargs, fragment):
    from agenthub.integrations.trl import trl_environments

    with pytest.raises(AgentHubError, match=fragment):
        trl_environments("tools/guess-number-v0", **kwargs)
    with pytest.raises(AgentHubError, match=fragment):
        trl_environments("tools/guess-number:test", **kwargs)
