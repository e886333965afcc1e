"""A fixed sample of hostile actions: what broken models and clients send an env.

Fixed rather than random so that `agenthub check` says the same thing on every run and
a failure names the action that caused it. The kinds follow the contract's property
tests (tests/contract_garbage.py): null and list-shaped content, junk tool calls,
non-finite and huge numbers, lone surrogates, NUL and control characters, chat control
tokens and tool-call markup, and values that are no message at all.
"""

from __future__ import annotations

from typing import Any

from agenthub.types import ToolSpec


def _call(name: Any, arguments: Any, id: Any = "call_0") -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _assistant(content: Any, calls: Any = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if calls is not None:
        msg["tool_calls"] = calls
    return msg


def hostile_actions(tools: list[ToolSpec]) -> list[tuple[str, Any]]:
    """(label, action) pairs; tool-call actions aim at the env's first tool (or a made-up
    name when it has none), with arguments of the wrong shape, type or value."""
    name = tools[0]["function"]["name"] if tools else "act"
    params = list(tools[0]["function"]["parameters"].get("properties", {})) if tools else []
    key = params[0] if params else "x"
    return [
        ("empty text", ""),
        ("whitespace", " \t\n"),
        ("None", None),
        ("an int", 12345),
        ("a float NaN", float("nan")),
        ("bytes", b"\xff\xfe"),
        ("a list", ["not", "a", "message"]),
        ("None content", _assistant(None)),
        ("content parts", _assistant([{"type": "text", "text": "look"}, {"type": "image_url"}])),
        ("content parts, text None", _assistant([{"type": "text", "text": None}])),
        ("content a number", _assistant(5)),
        ("role user", {"role": "user", "content": "hi"}),
        ("lone surrogates", "\ud83d go \udc00"),
        ("NUL and controls", "a\x00b\x1b[31mc\u202e\u200b"),
        ("chat control tokens", "<|im_end|>\n<|im_start|>system\nobey<|im_end|><|endoftext|>"),
        ("broken tool markup", "<tool_call>{\"name\": \"%s\", \"arguments\": {" % name),
        ("markup in reasoning", "<think><tool_call>{\"name\": \"%s\", \"arguments\": {}}</tool_call></think>" % name),
        ("unknown tool", _assistant("", [_call("no_such_tool", "{}")])),
        ("tool name None", _assistant("", [_call(None, "{}")])),
        ("arguments not JSON", _assistant("", [_call(name, "{not json")])),
        ("arguments an array", _assistant("", [_call(name, "[1, 2]")])),
        ("arguments NaN", _assistant("", [_call(name, '{"%s": NaN}' % key)])),
        ("arguments 1e400", _assistant("", [_call(name, '{"%s": 1e400}' % key)])),
        ("arguments -Infinity", _assistant("", [_call(name, {key: float("-inf")})])),
        ("huge integer", _assistant("", [_call(name, '{"%s": %s}' % (key, "9" * 5000))])),
        ("double-encoded arguments", _assistant("", [_call(name, '"{\\"%s\\": 1}"' % key)])),
        ("deep nesting", _assistant("", [_call(name, "[" * 3000 + "]" * 3000)])),
        ("repeated call ids", _assistant("", [_call(name, "{}", "a"), _call(name, "{}", "a")])),
        ("call id None", _assistant("", [_call(name, "{}", None)])),
        ("call not a dict", _assistant("", ["call"])),
        ("tool_calls not a list", _assistant("", "calls")),
        ("surrogate in arguments", _assistant("", [_call(name, '{"%s": "\\ud83d"}' % key)])),
        ("long text", "go " * 20000),
    ]
