"""Each kind of input issue 13 lists, its example and variants of our own, stepped into
the contract: null and list content, reasoning blocks, parallel calls, id-less and
text-written calls, non-finite numbers, lone surrogates, and the bare (unwrapped) env."""

from __future__ import annotations

import json
import pickle

import pytest
from gymnasium.utils.env_checker import check_env

import agenthub
from agenthub.actions import Action, parse_action
from agenthub.types import Trajectory, TrajectoryWriter, conversation_problems, read_trajectories

GUESS = "tools/guess-number-v0"


def call(number, id=None, name="guess"):
    tc = {"type": "function", "function": {"name": name, "arguments": json.dumps({"number": number})}}
    return {**tc, "id": id} if id is not None else tc


def hermes(number) -> str:
    return f'<tool_call>{{"name": "guess", "arguments": {{"number": {number}}}}}</tool_call>'


@pytest.fixture
def guess():
    env = agenthub.make(GUESS)
    env.reset(seed=0)  # the secret is 50
    return env


# -- 1. null content -------------------------------------------------------------------

@pytest.mark.parametrize("action", [
    {"role": "assistant", "content": None},
    {"role": "assistant"},
    {"role": "assistant", "content": None, "tool_calls": None},
    {"role": "assistant", "content": None, "tool_calls": []},
])
def test_null_content_is_the_empty_action(guess, action):
    obs, reward, terminated, truncated, info = guess.step(action)
    assert "empty action" in info["action_error"] and "None" not in obs[0]["content"]
    assert info["reward_components"] == {"malformed_action": 1.0}


def test_null_content_with_calls_has_empty_text(guess):
    obs, *_, info = guess.step({"role": "assistant", "content": None, "tool_calls": [call(32, "a")]})
    assert obs == [{"role": "tool", "tool_call_id": "a", "content": "32: higher"}]
    action = parse_action({"role": "assistant", "content": None, "tool_calls": [call(32, "a")]}, guess.tools)
    assert action.text == "" and action.message["content"] == ""


def test_textworld_does_not_receive_the_command_none():
    action = parse_action({"role": "assistant", "content": None}, [])
    assert action.text == "" and "empty action" in action.errors[0]


# -- 2. content as a list of parts -----------------------------------------------------

def test_text_parts_are_joined(guess):
    parts = [{"type": "text", "text": "3"}, {"type": "text", "text": "2"}]
    obs, *_ = guess.step({"role": "assistant", "content": parts})
    assert obs == [{"role": "user", "content": "32: higher"}]


@pytest.mark.parametrize("content", [
    ["32"],  # the example: a bare string is no content part
    [{"type": "text", "text": None}],  # the other example
    [{"type": "image_url", "image_url": {"url": "data:,"}}],
    [{"text": "32"}], [7], [None], 32, {"type": "text", "text": "32"}, 3.5,
])
def test_other_content_shapes_are_error_observations(guess, content):
    obs, reward, terminated, truncated, info = guess.step({"role": "assistant", "content": content})
    assert obs[0]["role"] == "user" and obs[0]["content"].startswith("Error: content")
    assert info["reward_components"] == {"malformed_action": 1.0} and not terminated


# -- 3. reasoning blocks -----------------------------------------------------------------

@pytest.mark.parametrize("text", [
    f"<think>… {hermes(10)} …</think>{hermes(32)}",  # the example
    f"<thinking>try {hermes(10)}</thinking>\n{hermes(32)}",
    f"opened in the prompt, {hermes(10)}</think>{hermes(32)}",  # Qwen3: <think> is in the template
    f"<think>a</think>{hermes(32)}<think>then {hermes(10)}</think>",
    f'<think>{{"name": "guess", "arguments": {{"number": 10}}}}</think>{hermes(32)}',
])
def test_calls_inside_reasoning_are_never_executed(guess, text):
    obs, *_, info = guess.step(text)
    assert [m["content"] for m in obs] == ["32: higher"], obs
    action = parse_action(text, guess.tools)
    assert [c.arguments["number"] for c in action.calls] == [32]
    assert "10" in action.reasoning and action.message["reasoning"] == action.reasoning
    assert "<think" not in action.message["content"] and "<tool_call>" not in action.message["content"]


@pytest.mark.parametrize("text", [f"<think>I will call {hermes(10)}", f"<thinking>{hermes(10)}", "<think>"])
def test_unclosed_reasoning_is_not_an_action(guess, text):
    obs, *_, info = guess.step(text)
    assert "empty action" in info["action_error"] and "reasoning is never executed" in info["action_error"]


def test_reasoning_from_a_server_is_kept_on_the_turn():
    msg = {"role": "assistant", "content": "32", "reasoning_content": "binary search: 32"}
    action = parse_action(msg, [])
    assert action.text == "32" and action.message["reasoning"] == "binary search: 32"


# -- 4. parallel tool calls --------------------------------------------------------------

def test_parallel_calls_get_one_tool_message_each_in_order(guess):
    obs, *_, info = guess.step({"role": "assistant", "content": "", "tool_calls": [call(20, "a"), call(40, "b")]})
    assert [m["tool_call_id"] for m in obs] == ["a", "b"]
    assert obs[0]["content"] == "20: higher" and obs[1]["content"].startswith("Error: ")
    assert "at most 1 tool call" in obs[1]["content"] and info["ignored_calls"] == 1
    assert "action_error" not in info  # the first call ran: the turn is not malformed


def test_three_hermes_calls_and_an_env_that_answers_every_call():
    env = agenthub.make(GUESS)
    env.reset(seed=0)
    obs, *_ = env.step(hermes(10) + hermes(20) + hermes(30))
    assert [m["tool_call_id"] for m in obs] == ["call00100", "call00101", "call00102"]
    assert [m["content"].startswith("Error") for m in obs] == [False, True, True]
    compute = agenthub.make("tools/compute-v0")  # runs every call itself
    compute.reset(seed=0)
    tool = compute.tools[0]["function"]["name"]
    calls = [{"id": i, "type": "function", "function": {"name": tool, "arguments": "{}"}} for i in "xyz"]
    obs, *_ = compute.step({"role": "assistant", "content": "", "tool_calls": calls})
    assert [m["tool_call_id"] for m in obs if m["role"] == "tool"] == ["x", "y", "z"]
    assert not conversation_problems([{"role": "assistant", "content": "", "tool_calls": calls}] + obs)


# -- 5. transcripts whose tool ids match ---------------------------------------------------

@pytest.mark.parametrize("tool_calls", [
    [{"type": "function", "function": {"name": "guess", "arguments": '{"number": 5}'}}],  # no id
    [call(5, ""), call(6, "")],  # empty ids
    [call(5, "same"), call(6, "same")],  # repeated ids
    [{"name": "guess", "arguments": {"number": 5}}],  # flat, arguments as an object
])
def test_recorded_message_carries_the_ids_the_tool_messages_answer(guess, tool_calls):
    action = parse_action({"role": "assistant", "content": "", "tool_calls": tool_calls}, guess.tools, 1)
    obs, *_ = guess.step(action)
    assert not conversation_problems([action.message] + obs), (action.message, obs)
    ids = [c["id"] for c in action.message["tool_calls"]]
    assert len(set(ids)) == len(ids) == len(tool_calls) and all(ids)


def test_ids_are_deterministic_and_fit_strict_templates():
    a = parse_action(hermes(3) + hermes(4), agenthub.make(GUESS).tools, 7)
    b = parse_action(hermes(3) + hermes(4), agenthub.make(GUESS).tools, 7)
    ids = [c.id for c in a.calls]
    assert ids == [c.id for c in b.calls] == ["call00700", "call00701"]
    assert all(len(i) == 9 and i.isalnum() for i in ids)  # Mistral's template demands this


# -- 6. numbers JSON decodes to infinity -----------------------------------------------------

@pytest.mark.parametrize("action", [
    '<tool_call>{"name": "guess", "arguments": {"number": 1e400}}</tool_call>',  # the example
    '<tool_call>{"name": "guess", "arguments": {"number": NaN}}</tool_call>',
    '{"name": "guess", "arguments": {"number": -Infinity}}',
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "guess", "arguments": '{"number": -1e999}'}}]},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "guess", "arguments": {"number": float("inf")}}}]},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "guess", "arguments": {"number": float("nan")}}}]},
])
def test_non_finite_numbers_are_rejected_when_parsed(guess, action):
    obs, reward, terminated, truncated, info = guess.step(action)
    assert "action_error" in info and reward == 0.0 and not terminated
    assert all(m["content"].startswith("Error:") for m in obs)


def test_huge_integers_and_double_encoded_arguments_are_read():
    tools = agenthub.make(GUESS).tools
    big = parse_action(f'<tool_call>{{"name": "guess", "arguments": {{"number": {10**40}}}}}</tool_call>', tools)
    assert big.ok and big.calls[0].arguments["number"] == 10**40
    twice = json.dumps(json.dumps({"number": 9}))
    double = parse_action({"tool_calls": [{"id": "d", "function": {"name": "guess", "arguments": twice}}]}, tools)
    assert double.ok and double.calls[0].arguments == {"number": 9}
    assert json.loads(double.message["tool_calls"][0]["function"]["arguments"]) == {"number": 9}


# -- 7. lone surrogates ------------------------------------------------------------------------

def test_writer_escapes_lone_surrogates_and_reads_them_back(tmp_path):
    traj = Trajectory("e", "t", 0, "a", final_observation=[{"role": "tool", "content": "half \ud83d an emoji"}],
                      error="\udc00")
    path = tmp_path / "t.jsonl"
    with TrajectoryWriter(path) as w:
        w.write(traj)
        w.write(Trajectory("e", "t2", 1, "a"))
    back = read_trajectories(path)
    assert [t.task_id for t in back] == ["t", "t2"]
    assert back[0].final_observation[0]["content"] == "half \ud83d an emoji" and back[0].error == "\udc00"


@pytest.mark.parametrize("action", [
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "guess", "arguments": '{"number": "\\ud83d"}'}}]},
    "\ud83d32", "32\x00", {"role": "assistant", "content": [{"type": "text", "text": "\udfff 32"}]},
])
def test_env_text_is_valid_unicode(guess, action):
    parsed = parse_action(action, guess.tools)
    encoded = json.dumps(parsed.message, ensure_ascii=False).encode("utf-8")  # would raise on a surrogate
    assert b"\x00" not in encoded and "\ufffd" in encoded.decode()
    obs, *_ = guess.step(action)
    assert obs[0]["role"] in ("user", "tool")


def test_surrogate_pairs_are_joined_not_replaced():
    action = parse_action('{"name": "guess", "arguments": {"number": "\\ud83d\\ude00"}}', agenthub.make(GUESS).tools)
    assert action.calls[0].arguments["number"] == "\U0001f600"


# -- 9. the unwrapped env and plugin-style code ---------------------------------------------------

FAMILY_IDS = [GUESS, "tools/compute-v0", "tools/search-qa-v0", "textworld/w2-o3-q4-v0"]


@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_check_env_passes_on_the_unwrapped_env(env_id):
    env = agenthub.make(env_id)
    try:
        check_env(env.unwrapped, skip_render_check=True)
        env.unwrapped.reset(seed=1)
        obs, *_ = env.unwrapped.step(env.action_space.sample())
        assert isinstance(obs, list)
    finally:
        env.close()


def test_unwrapped_step_takes_text_messages_and_actions():
    env = agenthub.make(GUESS).unwrapped
    env.reset(seed=0)
    assert env.step("32")[0] == [{"role": "user", "content": "32: higher"}]
    assert env.step({"role": "assistant", "content": None, "tool_calls": [call(40, "q")]})[0] == [
        {"role": "tool", "tool_call_id": "q", "content": "40: higher"}]
    assert env.step(hermes(60))[0][0]["content"] == "60: lower"


def test_unwrapped_env_gives_id_less_calls_new_ids_every_turn():
    env = agenthub.make(GUESS).unwrapped
    env.reset(seed=0)
    ids = [m["tool_call_id"] for n in (10, 20, 30) for m in env.step(hermes(n))[0]]
    assert len(set(ids)) == len(ids) == 3, ids  # a transcript may not answer two calls with one id


def test_action_reads_as_text_and_as_a_message():
    action = parse_action(f"<think>hmm</think>ok {hermes(7)}", agenthub.make(GUESS).tools, 2)
    assert isinstance(action, str) and action == "ok" and action.text == "ok" and action.strip() == "ok"
    assert (action if isinstance(action, str) else action.get("content")) == "ok"
    assert action.get("content") == "ok" and action["content"] == "ok" and action[0] == "o"
    assert action["tool_calls"][0]["function"]["name"] == "guess" and action.get("missing", 1) == 1
    assert "role" in list(action.keys()) and action.reasoning == "hmm"
    copy = pickle.loads(pickle.dumps(action))
    assert isinstance(copy, Action) and copy.message == action.message and copy.calls == action.calls
    assert json.dumps({"a": action}) == '{"a": "ok"}'


def test_guess_number_refuses_what_is_not_an_integer_and_says_so():
    env = agenthub.make("tools/guess-number-v0")
    env.reset(seed=3)
    for arguments in ({"number": True}, {"number": 2.5}, {"number": "abc"}, {"number": [7]}):
        obs, reward, *_, info = env.step({"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "guess", "arguments": json.dumps(arguments)}}]})
        assert info["reward_components"].get("invalid") == 1.0 and reward == 0.0, arguments
        assert "is not an integer" in obs[0]["content"] and "'None'" not in obs[0]["content"]
    obs, *_ = env.step("ok, let me think")
    assert obs[0]["content"].startswith("no number"), obs
    obs, _, _, _, info = env.step({"role": "assistant", "content": "", "tool_calls": [
        {"id": "b", "type": "function", "function": {"name": "guess", "arguments": '{"number": 50.0}'}}]})
    assert "invalid" not in info["reward_components"], obs
    env.close()
