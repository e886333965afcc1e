"""The named tool-call parsers (vLLM's names) and the one JSON scanner behind them."""

from __future__ import annotations

import pytest

import agenthub
from agenthub.actions import parse_action
from agenthub.errors import AgentHubError
from agenthub.tool_parsers import TOOL_PARSERS, get_tool_parser, json_end, loads_json, split_reasoning

TOOLS = agenthub.make("tools/guess-number-v0").tools


def numbers(text: str, parser: str) -> list:
    action = parse_action(text, TOOLS, tool_parser=parser)
    assert action.ok, action.errors
    return [c.arguments["number"] for c in action.calls]


# -- the scanner ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, end", [
    ('{"a": 1} tail', 8),
    ('{"a": "}"} tail', 10),  # a brace inside a string
    ('{"a": "\\"}"} x', 12),  # an escaped quote, then a brace, inside a string
    ('{"a": "</tool_call>"}</tool_call>', 21),  # the closing tag inside an argument
    ('[{"a": [1, {"b": 2}]}, 3] x', 25),
    ('{"a": 1', None),  # never closes
])
def test_json_end_skips_strings_and_escapes(text, end):
    assert json_end(text, 0) == end


@pytest.mark.parametrize("text", ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", '{"x": [1, 1e999]}',
                                  "[" * 100000 + "]" * 100000, "9" * 5000])
def test_loads_json_refuses_what_is_not_finite_strict_json(text):
    with pytest.raises(ValueError):
        loads_json(text)


def test_loads_json_reads_big_but_finite_numbers():
    assert loads_json('{"a": 1e308, "b": 123456789012345678901234567890}') == {
        "a": 1e308, "b": 123456789012345678901234567890}


# -- reasoning -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, outside, reasoning", [
    ("<think>r</think>a", "a", "r"),
    ("<thinking>r</thinking> a", "a", "r"),
    ("r</think>a", "a", "r"),  # opened by the prompt
    ("a<think>r", "a", "r"),  # cut off while thinking
    ("<think>r1</think>a<think>r2</think>b", "ab", "r1\n\nr2"),
    ("<think>r</thinking>", "", "r</thinking>"),  # a mismatched closing tag does not close it
    ("plain", "plain", None),
])
def test_split_reasoning(text, outside, reasoning):
    assert split_reasoning(text) == (outside, reasoning)


# -- the formats -----------------------------------------------------------------------------

def test_hermes_blocks_bare_json_and_lists():
    assert numbers('<tool_call>\n{"name": "guess", "arguments": {"number": 1}}\n</tool_call>', "hermes") == [1]
    assert numbers('<tool_call>{"name": "guess", "arguments": {"number": 2}}', "hermes") == [2]  # no closing tag
    assert numbers('{"name": "guess", "arguments": {"number": 3}}', "hermes") == [3]
    assert numbers('<tool_call>[{"name": "guess", "arguments": {"number": 4}}, '
                   '{"name": "guess", "arguments": {"number": 5}}]</tool_call>', "hermes") == [4, 5]
    assert numbers('<tool_call>{"name": "guess", "parameters": {"number": 6}}</tool_call>', "hermes") == [6]


def test_hermes_reads_a_closing_tag_inside_an_argument():
    tools = agenthub.make("tools/search-qa-v0").tools
    name = tools[0]["function"]["name"]
    key = next(iter(tools[0]["function"]["parameters"]["properties"]))
    text = f'<tool_call>{{"name": "{name}", "arguments": {{"{key}": "a </tool_call> b"}}}}</tool_call> after'
    action = parse_action(text, tools)
    assert action.ok and action.calls[0].arguments[key] == "a </tool_call> b"
    assert action.text == "after"


@pytest.mark.parametrize("text, error", [
    ("<tool_call>{guess 10}</tool_call>", "not valid JSON"),
    ("<tool_call>guess(10)</tool_call>", 'JSON object with "name"'),
    ('<tool_call>{"arguments": {}}</tool_call>', 'JSON object with "name"'),
    ('<tool_call>{"name": "guess", "arguments": {"number": 1}</tool_call>', "never closes"),
])
def test_hermes_errors_keep_the_unreadable_text(text, error):
    action = parse_action(text, TOOLS)
    assert any(error in e for e in action.errors), action.errors
    assert "<tool_call>" in action.message["content"] and "tool_calls" not in action.message


def test_llama3_json():
    assert numbers('{"name": "guess", "parameters": {"number": 7}}', "llama3_json") == [7]
    assert numbers('<|python_tag|>{"name": "guess", "parameters": {"number": 8}}; '
                   '{"name": "guess", "parameters": {"number": 9}}', "llama3_json") == [8, 9]
    assert parse_action("the answer is 8", TOOLS, tool_parser="llama3_json").text == "the answer is 8"
    bad = parse_action('{"name": "guess", "parameters": {"number": 8}} trailing words', TOOLS,
                       tool_parser="llama3_json")
    assert not bad.ok


def test_mistral_both_generations():
    assert numbers('[TOOL_CALLS][{"name": "guess", "arguments": {"number": 10}}, '
                   '{"name": "guess", "arguments": {"number": 11}}]', "mistral") == [10, 11]
    assert numbers('[TOOL_CALLS]guess[ARGS]{"number": 12}[TOOL_CALLS]guess[ARGS]{"number": 13}', "mistral") == [12, 13]
    ids = parse_action('[TOOL_CALLS][{"name": "guess", "arguments": {"number": 1}, "id": "abcdefghi"}]', TOOLS,
                       tool_parser="mistral")
    assert ids.calls[0].id == "abcdefghi"
    mixed = parse_action('Let me guess. [TOOL_CALLS]guess[ARGS]{"number": 3}', TOOLS, tool_parser="mistral")
    assert mixed.text == "Let me guess." and mixed.calls[0].arguments == {"number": 3}
    assert not parse_action("[TOOL_CALLS]guess[ARGS]{", TOOLS, tool_parser="mistral").ok


def test_pythonic():
    assert numbers("[guess(number=14)]", "pythonic") == [14]
    assert numbers("<|python_start|>[guess(number=15), guess(number=16)]<|python_end|>", "pythonic") == [15, 16]
    assert parse_action("[a list, not calls]", TOOLS, tool_parser="pythonic").text == "[a list, not calls]"
    for bad in ("[guess(14)]", "[guess(number=1e400)]", "[guess(number=float('nan'))]", "[guess(**x)]",
                "[guess(number=1), 5]", "[guess(number={1, 2})]"):
        assert not parse_action(bad, TOOLS, tool_parser="pythonic").ok, bad
    assert parse_action("[guess(number=1)", TOOLS, tool_parser="pythonic").text == "[guess(number=1)"  # not a list


@pytest.mark.parametrize("parser, call", [
    ("hermes", '<tool_call>{"name": "guess", "arguments": {"number": 10}}</tool_call>'),
    ("llama3_json", '{"name": "guess", "parameters": {"number": 10}}'),
    ("mistral", '[TOOL_CALLS][{"name": "guess", "arguments": {"number": 10}}]'),
    ("pythonic", "[guess(number=10)]"),
])
def test_every_parser_skips_calls_drafted_in_reasoning(parser, call):
    text = f"<think>maybe {call}</think>{call.replace('10', '32')}"
    assert numbers(text, parser) == [32]
    assert numbers(f"drafting {call}</think>{call.replace('10', '33')}", parser) == [33]
    unclosed = parse_action(f"<think>{call}", TOOLS, tool_parser=parser)
    assert not unclosed.calls and "reasoning is never executed" in unclosed.errors[0]


def test_parser_is_picked_by_name_on_make_and_unknown_names_are_one_clear_error():
    assert set(TOOL_PARSERS) >= {"hermes", "llama3_json", "mistral", "pythonic"}
    env = agenthub.make("tools/guess-number-v0", tool_parser="pythonic")
    env.reset(seed=0)
    obs, *_ = env.step("[guess(number=32)]")
    assert obs[0]["role"] == "tool" and obs[0]["content"] == "32: higher"
    with pytest.raises(AgentHubError, match="unknown tool parser 'qwen9'.*hermes"):
        agenthub.make("tools/guess-number-v0", tool_parser="qwen9")
    with pytest.raises(AgentHubError, match="unknown tool parser"):
        get_tool_parser("nope")


def test_many_calls_get_unique_ids_and_many_errors_one_short_observation():
    text = "".join(f'<tool_call>{{"name": "guess", "arguments": {{"number": {n}}}}}</tool_call>' for n in range(250))
    many = parse_action(text, TOOLS, 4)
    assert len({c.id for c in many.calls}) == 250 and many.calls[0].id == "call00400"
    broken = parse_action("<tool_call>{}" * 10000, TOOLS)
    assert broken.errors == ['tool call must be a JSON object with "name" and "arguments" (x10000)']
    mixed = parse_action("".join(f'<tool_call>{{"name": "t{n}", "arguments": {{}}}}</tool_call>' for n in range(50)),
                         TOOLS)
    assert len(mixed.errors) == 6 and mixed.errors[-1] == "and 45 more distinct problems"
