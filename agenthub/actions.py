"""Turning whatever an agent produced into a validated action.

An agent's output arrives as raw model text (possibly with reasoning blocks and tool
calls in the model's own format, read by a named parser: `agenthub.tool_parsers`), or
as an OpenAI assistant message with `tool_calls` (content a string, a list of text
parts, or null). `parse_action` normalises all of them and never raises: anything
malformed is reported in `Action.errors`, which the env turns into an error observation
(the malformed-action contract of DESIGN.md).

The result, an `Action`, serves env code written in any of the forms DESIGN.md allows:
it *is* a `str` (the assistant's text), it reads like the assistant message dict
(`action.get("content")`, `action["tool_calls"]`), and it carries the decoded parts
(`.calls`, `.message`, `.reasoning`, `.errors`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Iterator

from agenthub.tool_parsers import get_tool_parser, loads_json, split_reasoning
from agenthub.types import Message, ToolCall, ToolSpec, content_text


@dataclass
class Call:
    """One validated tool call, arguments already decoded (a JSON object, finite numbers)."""

    name: str
    arguments: dict[str, Any]
    id: str


class Action(str):
    """What an env's `step` receives: the assistant's text, as a `str`, plus its parts.

    - `text`: the text outside reasoning blocks and tool-call markup (also `str(action)`);
    - `message`: the normalised assistant message (content a string, parsed `tool_calls`
      with ids, `reasoning` when there was any): what transcripts record;
    - `calls`: the validated tool calls, in order; `errors`: why the action is malformed;
    - `reasoning`: the reasoning text (never executed), or None.

    `action.get(key)`, `action[key]` (for a string key) and `action.keys()` read the
    message, so an env written for message dicts works too; indexing with an int or a
    slice, `in`, `len` and every other str operation act on the text.
    """

    message: Message
    calls: list[Call]
    errors: list[str]
    reasoning: str | None

    def __new__(cls, text: str, message: Message | None = None, calls: list[Call] | None = None,
                errors: list[str] | None = None, reasoning: str | None = None) -> Action:
        self = super().__new__(cls, text)
        self.message = message if message is not None else {"role": "assistant", "content": str(text)}
        self.calls = list(calls or [])
        self.errors = list(errors or [])
        self.reasoning = reasoning
        return self

    @property
    def text(self) -> str:
        return str.__str__(self)

    @property
    def ok(self) -> bool:
        return not self.errors

    def get(self, key: str, default: Any = None) -> Any:
        return self.message.get(key, default)

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return self.message[key]  # type: ignore[literal-required]
        return str.__getitem__(self, key)

    def keys(self) -> Iterator[str]:
        return iter(self.message.keys())

    def with_calls(self, calls: list[Call]) -> Action:
        """The same action, offering the env only `calls` (a subset of `self.calls`)."""
        return Action(self.text, self.message, calls, self.errors, self.reasoning)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Action, (self.text, self.message, self.calls, self.errors, self.reasoning))

    def __repr__(self) -> str:
        return f"Action({self.text!r}, calls={self.calls!r}, errors={self.errors!r})"


def valid_text(text: str) -> str:
    """`text` as valid Unicode that C libraries can take: surrogate pairs joined, an
    unpaired surrogate (half an emoji from a JSON escape) and NUL replaced by U+FFFD."""
    if text.isascii() and "\x00" not in text:
        return text
    fixed = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return fixed.replace("\x00", "\ufffd")


def _valid_json(value: Any) -> Any:
    """`valid_text` applied to every string (keys included) of decoded JSON."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, list):
        return [_valid_json(v) for v in value]
    if isinstance(value, dict):
        return {valid_text(k) if isinstance(k, str) else k: _valid_json(v) for k, v in value.items()}
    return value


def call_id(turn: int, index: int) -> str:
    """A deterministic id for a call that came without one: letters and digits, 9 of them
    (the strictest form chat templates demand, Mistral's) for the first 100 calls of a
    turn; unique within a message, and across a conversation of up to 1000 turns."""
    return f"call{turn % 1000:03d}{index:02d}"


def parse_action(raw: Any, tools: list[ToolSpec], turn: int = 0, tool_parser: str | None = None) -> Action:
    """Normalise and validate `raw` against the env's tool specs; never raises for any `raw`.

    With tools declared, tool calls are taken from `raw["tool_calls"]` or, when it has
    none, read out of the text by `tool_parser` (a name in `agenthub.tool_parsers`,
    default `hermes`; an unknown name raises AgentHubError). Without tools the text is
    the action. Reasoning blocks are split off in both cases. `turn` numbers the ids
    generated for calls that have none.
    """
    if isinstance(raw, Action):
        return raw
    if isinstance(raw, str):
        given: Mapping[str, Any] = {"role": "assistant", "content": raw}
    elif isinstance(raw, Mapping):
        given = raw
    else:
        error = f"action must be text or an assistant message, got {type(raw).__name__}"
        return Action("", {"role": "assistant", "content": ""}, errors=[error])

    content, errors = content_text(given.get("content"))
    content = valid_text(content)
    raw_calls = given.get("tool_calls")
    if isinstance(raw_calls, list) and not raw_calls:  # what some clients send for "no calls"
        raw_calls = None
    if tools and raw_calls is None:
        parsed = get_tool_parser(tool_parser)(content)
        text, reasoning, errors = parsed.content, parsed.reasoning, errors + parsed.errors
        entries: list[Any] = parsed.calls
    else:
        text, reasoning = split_reasoning(content)
        entries = []
        if raw_calls is not None:
            if isinstance(raw_calls, list):
                entries = [_flatten_call(c) for c in raw_calls]
            else:
                errors.append("tool_calls must be a list of calls")
    given_reasoning = given.get("reasoning", given.get("reasoning_content"))
    if isinstance(given_reasoning, str) and given_reasoning.strip():
        reasoning = valid_text(given_reasoning) + (f"\n\n{reasoning}" if reasoning else "")

    specs = {t["function"]["name"]: t["function"] for t in tools}
    calls: list[Call] = []
    recorded: list[ToolCall] = []
    used_ids: set[str] = set()
    for i, entry in enumerate(entries):
        call, tool_call, error = _check_call(entry, specs, turn, i, used_ids)
        if error:
            errors.append(error)
        elif call:
            calls.append(call)
        if tool_call:
            recorded.append(tool_call)
    errors = _summarised(errors)
    if not calls and not errors and not text.strip():
        errors.append("empty action: write a command" + (" or call a tool" if tools else "")
                      + (" (reasoning is never executed)" if reasoning is not None else ""))
    message: Message = {"role": "assistant", "content": text}
    if recorded:
        message["tool_calls"] = recorded
    if reasoning:
        message["reasoning"] = reasoning  # type: ignore[typeddict-unknown-key]
    return Action(text, message, calls, errors, reasoning)


_MAX_ERRORS = 5


def _summarised(errors: list[str]) -> list[str]:
    """Each distinct error once, with its count, at most `_MAX_ERRORS` of them: ten
    thousand broken calls make one short error observation, not a megabyte of them."""
    counts: dict[str, int] = {}
    for e in errors:
        counts[e] = counts.get(e, 0) + 1
    out = [e if n == 1 else f"{e} (x{n})" for e, n in counts.items()]
    if len(out) > _MAX_ERRORS:
        out = out[:_MAX_ERRORS] + [f"and {len(out) - _MAX_ERRORS} more distinct problems"]
    return out


def _flatten_call(tc: Any) -> Any:
    """An OpenAI tool call `{"id", "type", "function": {"name", "arguments"}}` as the flat
    `{"name", "arguments", "id"}` the text parsers give; other shapes pass through."""
    if isinstance(tc, Mapping) and isinstance(tc.get("function"), Mapping):
        fn = tc["function"]
        flat = {"name": fn.get("name"), "arguments": fn.get("arguments")}
        return {**flat, "id": tc["id"]} if "id" in tc else flat
    return tc


_SHAPE = "tool call must look like {'type': 'function', 'function': {'name': ..., 'arguments': ...}}"


def _check_call(entry: Any, specs: dict[str, Any], turn: int, index: int, used_ids: set[str]
                ) -> tuple[Call | None, ToolCall | None, str | None]:
    """(the valid call or None, the call as the transcript records it or None, the error)."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or not entry["name"]:
        return None, None, _SHAPE
    name = valid_text(entry["name"])
    given_id = entry.get("id")
    cid = given_id if isinstance(given_id, str) and given_id and given_id not in used_ids else call_id(turn, index)
    while cid in used_ids:
        cid += "x"
    used_ids.add(cid)
    arguments, encoded, error = _decode_arguments(name, entry.get("arguments"))
    tool_call: ToolCall = {"id": cid, "type": "function", "function": {"name": name, "arguments": encoded}}
    if error:
        return None, tool_call, error
    if name not in specs:
        return None, tool_call, f"unknown tool {name!r} (available: {', '.join(sorted(specs)) or 'none'})"
    params = specs[name].get("parameters") or {}
    missing = [p for p in params.get("required", []) if p not in arguments]
    if missing:
        return None, tool_call, f"{name!r} is missing required argument(s): {', '.join(missing)}"
    unknown = [a for a in arguments if a not in params.get("properties", {})]
    if unknown and params.get("additionalProperties", True) is False:
        return None, tool_call, f"{name!r} got unexpected argument(s): {', '.join(unknown)}"
    return Call(name, arguments, cid), tool_call, None


def _decode_arguments(name: str, value: Any) -> tuple[dict[str, Any], str, str | None]:
    """(decoded arguments, the JSON text to record, error). Accepts a JSON object, its
    text, or its text encoded once more as a JSON string (a common model slip); numbers
    must be finite."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}, "{}", None
    if isinstance(value, str):
        value = valid_text(value)
        try:
            decoded = loads_json(value)
            if isinstance(decoded, str):  # double-encoded: '"{\\"number\\": 3}"'
                decoded = loads_json(decoded)
        except ValueError as e:
            return {}, value, f"arguments of {name!r} are not valid JSON ({e})"
    else:
        decoded = value
    try:
        encoded = json.dumps(_valid_json(decoded), ensure_ascii=False, allow_nan=False)
        decoded = loads_json(encoded)  # JSON types only: tuples become lists, keys strings
    except (TypeError, ValueError, RecursionError) as e:
        text = value if isinstance(value, str) else "{}"
        return {}, text, f"arguments of {name!r} must be JSON with finite numbers ({str(e).splitlines()[0]})"
    if not isinstance(decoded, dict):
        return {}, encoded, f"arguments of {name!r} must be a JSON object"
    return decoded, encoded, None
