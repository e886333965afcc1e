"""Every registered env against the uniform API: gymnasium's checker, deterministic
reset, and the malformed-action contract."""

import asyncio
import json

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import agenthub
from agenthub.actions import parse_action

ENV_IDS = [s.id for s in agenthub.list_envs()]


def _make_or_skip(env_id: str) -> agenthub.Env:
    try:
        return agenthub.make(env_id)
    except agenthub.AgentHubError as e:  # an optional family whose extra is not installed
        pytest.skip(f"{env_id} cannot be built here: {e}")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_and_deterministic_reset(env_id):
    env = _make_or_skip(env_id)
    try:
        check_env(env, skip_render_check=True)
        check_env(env.unwrapped, skip_render_check=True)  # the bare env takes its own samples too
        obs1, info1 = env.reset(seed=7)
        obs2, info2 = env.reset(seed=7)
        assert obs1 == obs2 and info1["task_id"] == info2["task_id"]
        assert env.observation_space.contains(obs1)
        for key in ("task_id", "reward_components"):
            assert key in info1
    finally:
        env.close()
        env.close()  # idempotent


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_malformed_actions_never_raise(env_id):
    env = _make_or_skip(env_id)
    bad_actions = [
        "",
        "   ",
        {"role": "assistant", "content": ""},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "x", "type": "function", "function": {"name": "no_such_tool", "arguments": "{}"}}]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "x", "type": "function", "function": {"name": "guess", "arguments": "{not json"}}]},
        {"role": "assistant", "content": "", "tool_calls": [{"bogus": True}]},
        12345,
    ]
    if env.tools:  # only envs with tools read tool calls out of raw text
        bad_actions.append("<tool_call>{broken json</tool_call>")
    try:
        env.reset(seed=0)
        for action in bad_actions:
            obs, reward, terminated, truncated, info = env.step(action)
            assert "action_error" in info, action
            assert isinstance(obs, list) and obs[0]["content"].startswith("Error:")
            assert info["reward_components"] == {"malformed_action": 1.0} and reward == 0.0
            if terminated or truncated:
                env.reset(seed=0)
    finally:
        env.close()


def test_every_kind_of_malformed_action_is_reported():
    env = agenthub.make("tools/guess-number-v0")
    env.reset(seed=0)
    cases = {
        "": "empty action",
        '{"name": "guess", "arguments": {"numbr": 3}}': "missing required",
        "<tool_call>{oops</tool_call>": "not valid JSON",
        '<tool_call>{"name": "shout", "arguments": {}}</tool_call>': "unknown tool 'shout'",
    }
    for action, expected in cases.items():
        obs, reward, terminated, truncated, info = env.step(action)
        assert expected in info["action_error"], (action, info["action_error"])
        assert not terminated
    raw = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c9", "type": "function", "function": {"name": "guess", "arguments": "[1, 2]"}}]}
    obs, *_, info = env.step(raw)
    assert obs == [{"role": "tool", "tool_call_id": "c9", "content": "Error: " + info["action_error"]}]
    assert info["malformed_actions"] == 5 and info["turn"] == 5


def test_tool_calls_parse_from_raw_model_text():
    tools = agenthub.make("tools/guess-number-v0").tools
    hermes = 'Let me try.\n<tool_call>\n{"name": "guess", "arguments": {"number": 32}}\n</tool_call>'
    a = parse_action(hermes, tools)
    assert a.ok and a.calls[0].name == "guess" and a.calls[0].arguments == {"number": 32}
    assert json.loads(a.message["tool_calls"][0]["function"]["arguments"]) == {"number": 32}
    plain = parse_action('{"name": "guess", "arguments": {"number": 5}}', tools)
    assert plain.ok and plain.calls[0].arguments == {"number": 5}
    two = parse_action('<tool_call>{"name": "guess", "arguments": {"number": 1}}</tool_call>'
                       '<tool_call>{"name": "guess", "arguments": {"number": 2}}</tool_call>', tools)
    assert [c.arguments["number"] for c in two.calls] == [1, 2]
    text_only = parse_action("open the chest", [])
    assert text_only.ok and text_only.text == "open the chest" and not text_only.calls


def test_max_turns_truncates_and_info_has_outcome():
    env = agenthub.make("tools/guess-number-v0", max_turns=3)
    env.reset(seed=1)
    results = [env.step("0") for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True]
    info = results[-1][4]
    assert info["success"] is False and info["outcome"] == 0.0


def test_oracle_wins_and_dense_rewards_sum():
    env = agenthub.make("tools/guess-number-v0")
    env.reset(seed=3)
    total = 0.0
    for action in env.oracle_actions():
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        assert "progress" in info["reward_components"]
    assert terminated and info["success"] and info["outcome"] == 1.0
    assert total == pytest.approx(2.0)  # the range closes completely (1.0) plus the win (1.0)


def test_async_twins_match_sync():
    env = agenthub.make("tools/guess-number-v0")

    async def play():
        obs, info = await env.areset(seed=5)
        step = await env.astep("32")
        return obs, step[0]
    obs, step_obs = asyncio.run(play())
    sync_obs, _ = env.reset(seed=5)
    assert obs == sync_obs and env.step("32")[0] == step_obs


def test_gymnasium_make_reaches_agenthub_envs():
    env = gymnasium.make("agenthub:tools/guess-number-v0")
    obs, info = env.reset(seed=7)
    assert obs == agenthub.make("tools/guess-number-v0").reset(seed=7)[0]


def test_unknown_id_is_a_clear_error():
    with pytest.raises(agenthub.UnknownEnvError, match="did you mean tools/guess-number-v0"):
        agenthub.make("tools/guess-numbr-v0")
    assert agenthub.make("tools/guess-number").env_id == "tools/guess-number-v0"  # latest version
