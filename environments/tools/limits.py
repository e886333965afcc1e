"""What one tool call may be and cost: its arguments' types and size, its answer's size.

A policy under RL finds every input that makes a tool slow or its answer huge (a
megabyte query, a number with thousands of digits where a unit goes), so the tool-use
envs check each call against its tool's schema before running it, and cut every
answer to `MAX_RESULT_CHARS`. Per-tool costs (the calculator's number sizes, the
search engine's query length, the Python sandbox's time limit) are bounded where the
work is done; what is bounded here is what every tool shares.
"""

from __future__ import annotations

from typing import Any

from agenthub.types import ToolSpec

MAX_ARGUMENT_CHARS = 10_000  # all of one call's arguments together
MAX_RESULT_CHARS = 4_000  # what the agent reads back from one call
MAX_NUMBER_DIGITS = 100  # a number given where text is expected is taken as its text up to this size
JSON_TYPES = {"string": "a string", "number": "a number", "integer": "a whole number", "boolean": "true or false",
              "array": "a list", "object": "an object"}


def argument_chars(value: Any, limit: int = MAX_ARGUMENT_CHARS) -> int:
    """About how many characters `value` takes as JSON; counting stops past `limit`."""
    total, todo = 0, [value]
    while todo and total <= limit:
        item = todo.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 1  # a decimal digit holds ~3.3 bits
        elif isinstance(item, dict):
            total += 2 + len(item)
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, (list, tuple)):
            total += 2 + len(item)
            todo.extend(item)
        else:
            total += 8
    return total


def checked_arguments(name: str, arguments: dict[str, Any], tools: list[ToolSpec]) -> dict[str, Any]:
    """The call's arguments as its tool takes them, or ValueError saying what is wrong:
    too large, or an argument of the wrong JSON type. A number where a string belongs
    is taken as its text (models quote inconsistently); numeric text where a number
    belongs is left for the tool, which parses it."""
    size = argument_chars(arguments)
    if size > MAX_ARGUMENT_CHARS:
        raise ValueError(f"the arguments of {name} are over {MAX_ARGUMENT_CHARS:,} characters long")
    spec = next((t["function"] for t in tools if t["function"]["name"] == name), None)
    properties = spec.get("parameters", {}).get("properties", {}) if spec else {}
    out = dict(arguments)
    for key, value in arguments.items():
        expected = properties.get(key, {}).get("type")
        if expected == "string":
            if isinstance(value, (int, float)) and not isinstance(value, bool) and argument_chars(value) <= \
                    MAX_NUMBER_DIGITS:
                out[key] = str(value)
            elif not isinstance(value, str):
                raise ValueError(f"{key} must be {JSON_TYPES['string']}, got {_kind(value)}")
        elif expected in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(f"{key} must be {JSON_TYPES[expected]}, got {_kind(value)}")
            if isinstance(value, int) and argument_chars(value) > MAX_NUMBER_DIGITS:
                raise ValueError(f"{key} has more than {MAX_NUMBER_DIGITS} digits")
    return out


def bounded(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    """`text`, cut to `limit` characters with a note saying so."""
    if len(text) <= limit:
        return text
    note = f"\n... (cut: the answer was {len(text):,} characters; {limit:,} are shown)"
    return text[:limit - len(note)] + note


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"
