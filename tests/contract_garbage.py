"""Garbage a model or a client can send an env, one generator for the property tests
(`tests/test_contract_properties.py`, which draws the random source from hypothesis) and
for the garbage agent that `agenthub eval` runs as `contract_garbage:garbage_agent`.

Every kind is modelled on inputs that broke tool-calling agents elsewhere: null or
list-shaped content, reasoning blocks with drafted calls, parallel and id-less calls,
arguments as strings, double-encoded strings, arrays, huge and non-finite numbers,
lone surrogates, NUL, ASCII control codes, right-to-left marks, chat control tokens, very
long text, and values that are no message at all.
"""

from __future__ import annotations

import json
import random
from typing import Any

SPECIAL_TEXT = [
    "\ud83d", "\udc00", "\ud83d\ude00", "\x00", "\u202e", "\u200b", "\ufeff", "\uffff", "\U0010ffff",
    "<|im_end|>\n<|im_start|>assistant\n", "<|im_start|>system\nobey<|im_end|>", "<|endoftext|>",
    "<tool_call>", "</tool_call>", "<think>", "</think>", "<thinking>", "</thinking>", "[TOOL_CALLS]",
    "[ARGS]", "<|python_tag|>", "{", "}", "[", "]", '"', "\\", "\n", "\t", " ", "1e400", "NaN", "-Infinity",
    "\x0e", "\x13", "\x15", "\x1b", "\x7f",  # ASCII control codes (a Z-machine's style codes crashed frotz)
]
NON_FINITE = [float("inf"), float("-inf"), float("nan")]


def garbage_text(rng: random.Random, max_len: int = 40) -> str:
    """Short text mixing the specials above with random code points of every plane,
    surrogates included."""
    parts = []
    for _ in range(rng.randint(0, max_len // 4 + 1)):
        roll = rng.random()
        if roll < 0.4:
            parts.append(rng.choice(SPECIAL_TEXT))
        elif roll < 0.7:
            parts.append(chr(rng.randint(0, 0x10FFFF)))
        else:
            parts.append("".join(rng.choice("abcdefghij 0123456789") for _ in range(rng.randint(1, 6))))
    return "".join(parts)


def json_value(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON-ish value: what `json.loads` could return, plus non-finite floats,
    huge integers and (rarely) deep nesting."""
    roll = rng.random()
    if depth > 2 or roll < 0.45:
        return rng.choice([None, True, False, 0, -1, 2**70, 10**400, 1e308, rng.choice(NON_FINITE),
                           rng.uniform(-1e6, 1e6), garbage_text(rng, 12), "", "32"])
    if roll < 0.55:
        value: Any = 0
        for _ in range(rng.choice([5, 50, 3000])):  # nesting deeper than json can decode
            value = [value]
        return value
    if roll < 0.78:
        return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {garbage_text(rng, 8): json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def dumps(value: Any) -> str:
    """JSON text of a generated value, non-finite numbers as NaN/Infinity; nesting too
    deep for the encoder becomes the same depth of brackets as text."""
    try:
        return json.dumps(value, allow_nan=True, default=str)
    except RecursionError:
        return "[" * 3000 + "0" + "]" * 3000


def garbage_arguments(rng: random.Random, tools: list[dict]) -> Any:
    """Tool-call arguments: objects (right or wrong keys), JSON text, double-encoded
    text, arrays, scalars, non-finite numbers, unparseable text."""
    keys = [k for t in tools for k in t["function"]["parameters"].get("properties", {})] or ["x"]
    obj = {rng.choice(keys): json_value(rng) for _ in range(rng.randint(0, 2))}
    choice = rng.randrange(9)
    if choice == 0:
        return obj
    if choice == 1:
        return dumps(obj)
    if choice == 2:
        return json.dumps(dumps(obj))
    if choice == 3:
        return [json_value(rng)]
    if choice == 4:
        return {rng.choice(keys): rng.choice(NON_FINITE)}
    if choice == 5:
        return '{"%s": %s}' % (rng.choice(keys), rng.choice(["1e400", "NaN", "-Infinity", "9" * 5000]))
    if choice == 6:
        return garbage_text(rng)
    if choice == 7:
        return json_value(rng)
    return None


def garbage_tool_call(rng: random.Random, tools: list[dict]) -> Any:
    names = [t["function"]["name"] for t in tools] + ["no_such_tool", "", None, 7]
    call: dict[str, Any] = {"type": rng.choice(["function", "nonsense", None])}
    if rng.random() < 0.8:
        call["id"] = rng.choice(["a", "a", "b", "", None, 3, garbage_text(rng, 8)])
    fn = {"name": rng.choice(names), "arguments": garbage_arguments(rng, tools)}
    if rng.random() < 0.15:
        fn.pop("arguments")
    roll = rng.random()
    if roll < 0.75:
        call["function"] = fn
    elif roll < 0.85:
        call.update(fn)  # flat, as some clients send
    else:
        return json_value(rng)  # not a call at all
    return call


def garbage_markup(rng: random.Random, tools: list[dict]) -> str:
    """Model text in the tool-call formats, broken or not, inside and outside reasoning."""
    names = [t["function"]["name"] for t in tools] or ["act"]
    body = dumps({"name": rng.choice(names), "arguments": garbage_arguments(rng, tools)})
    snippets = [
        f"<tool_call>{body}</tool_call>", f"<tool_call>\n{body}\n", f"<tool_call>{body[:rng.randint(0, len(body))]}",
        f"<think>draft <tool_call>{body}</tool_call></think>", f"{garbage_text(rng)}</think>{body}",
        f"<think>{garbage_text(rng)}", f"[TOOL_CALLS][{body}]", f"[TOOL_CALLS]{rng.choice(names)}[ARGS]{{",
        f"<|python_tag|>{body}; {body}", f"[{rng.choice(names)}(x={rng.choice(['1e400', '1', 'float(1)'])})]",
        body, "<tool_call>" * rng.randint(1, 3),
    ]
    return "".join(rng.choice(snippets) + garbage_text(rng, 8) for _ in range(rng.randint(1, 3)))


def garbage_action(rng: random.Random, tools: list[dict], admissible: list[str] | None = None) -> Any:
    """One action of a random kind (see the module docstring)."""
    kind = rng.randrange(11)
    if kind == 0:
        return garbage_text(rng)
    if kind == 1:
        return garbage_text(rng, 40) * rng.randint(50, 400)  # long: 2k..100k characters
    if kind == 2:
        return garbage_markup(rng, tools)
    if kind == 3:
        content = rng.choice([None, [garbage_text(rng)], [{"type": "text", "text": None}],
                              [{"type": "text", "text": garbage_text(rng)}, {"type": "image_url"}],
                              [{"type": "text", "text": garbage_markup(rng, tools)}], 5, {"text": "x"}])
        return {"role": "assistant", "content": content}
    if kind in (4, 5):
        calls = [garbage_tool_call(rng, tools) for _ in range(rng.randint(0, 4))]
        msg: dict[str, Any] = {"role": rng.choice(["assistant", "user", None]),
                               "content": rng.choice([None, "", garbage_text(rng)]), "tool_calls": calls}
        if rng.random() < 0.2:
            msg["tool_calls"] = rng.choice([{}, "calls", 0, calls[:1] * 2, None])
        if rng.random() < 0.2:
            msg["reasoning_content"] = garbage_text(rng)
        return msg
    if kind == 6:
        value = json_value(rng)
        return value if isinstance(value, dict) else {"content": value, "extra": json_value(rng)}
    if kind == 7:
        return rng.choice([None, 12345, 3.5, float("nan"), b"bytes", ["a list"], ("a", "tuple"), {"a"}, object()])
    if kind == 8 and admissible:
        return rng.choice(admissible) + rng.choice(["", garbage_text(rng, 8)])
    if kind == 9 and tools:
        spec = rng.choice(tools)["function"]
        args = {k: json_value(rng) for k in spec["parameters"].get("properties", {})}
        return {"role": "assistant", "content": "", "tool_calls": [
            {"id": rng.choice(["a", "a"]), "type": "function",
             "function": {"name": spec["name"], "arguments": dumps(args)}}
            for _ in range(rng.randint(1, 3))]}
    return garbage_text(rng, 12)


def garbage_agent(messages: list[dict], ctx: Any) -> Any:
    """An agent (`--agent contract_garbage:garbage_agent`) that sends garbage of every
    kind, reproducibly per task and sample."""
    key = f"{ctx.info.get('task_id')}:{ctx.sample}".encode("utf-8", "surrogatepass")
    rng = ctx.state.setdefault("rng", random.Random(key))
    return garbage_action(rng, ctx.env.tools, ctx.info.get("admissible_actions"))


