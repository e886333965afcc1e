"""Turning whatever an agent produced into a validated action.

An agent's output arrives as raw model text (possibly with Hermes/Qwen
`<tool_call>{json}</tool_call>` blocks or a bare JSON call), or as an OpenAI assistant
message with `tool_calls`. `parse_action` normalises all of them and never raises:
anything malformed is reported in `Action.errors`, which the env turns into an error
observation (the malformed-action contract of DESIGN.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from agenthub.types import Message, ToolCall, ToolSpec, text_of

_TOOL_CALL_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


@dataclass
class Call:
    """One validated tool call, arguments already decoded."""

    name: str
    arguments: dict[str, Any]
    id: str


@dataclass
class Action:
    """What an env's `step` receives: the assistant message plus its decoded parts."""

    message: Message
    text: str
    calls: list[Call] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_action(raw: Any, tools: list[ToolSpec], turn: int = 0) -> Action:
    """Normalise and validate `raw` against the env's tool specs.

    With tools declared, tool calls are taken from `message["tool_calls"]` or, failing
    that, parsed out of the text; without tools the text itself is the action.
    """
    if isinstance(raw, Action):
        return raw
    if isinstance(raw, str):
        msg: Message = {"role": "assistant", "content": raw}
    elif isinstance(raw, dict):
        msg = dict(raw)  # type: ignore[assignment]
        msg.setdefault("role", "assistant")
        msg.setdefault("content", "")
    else:
        return Action({"role": "assistant", "content": str(raw)}, str(raw), errors=[
            f"action must be text or an assistant message, got {type(raw).__name__}"])

    text = text_of(msg) if isinstance(msg.get("content"), (str, list)) else str(msg.get("content"))
    errors: list[str] = []
    raw_calls: list[ToolCall] = list(msg.get("tool_calls") or [])
    if tools and not raw_calls:
        raw_calls, errors = _calls_from_text(text, turn)
        if raw_calls:
            msg["tool_calls"] = raw_calls
    calls = []
    for i, tc in enumerate(raw_calls):
        call, error = _validate_call(tc, tools, f"call_{turn}_{i}")
        if error:
            errors.append(error)
        elif call:
            calls.append(call)
    if not calls and not errors and not text.strip():
        errors.append("empty action: write a command" + (" or call a tool" if tools else ""))
    return Action(msg, text, calls, errors)


def _calls_from_text(text: str, turn: int) -> tuple[list[ToolCall], list[str]]:
    """Hermes/Qwen `<tool_call>` blocks, or the whole text as one JSON call."""
    blocks = _TOOL_CALL_BLOCK.findall(text)
    stripped = text.strip()
    if not blocks and stripped.startswith("{") and '"name"' in stripped:
        blocks = [stripped]
    calls: list[ToolCall] = []
    errors: list[str] = []
    for i, block in enumerate(blocks):
        try:
            obj = json.loads(block)
        except json.JSONDecodeError as e:
            errors.append(f"tool call is not valid JSON ({e.msg} at char {e.pos})")
            continue
        if not isinstance(obj, dict) or "name" not in obj:
            errors.append('tool call must be a JSON object with "name" and "arguments"')
            continue
        args = obj.get("arguments", obj.get("parameters", {}))
        calls.append({"id": f"call_{turn}_{i}", "type": "function", "function": {
            "name": str(obj["name"]),
            "arguments": args if isinstance(args, str) else json.dumps(args)}})
    return calls, errors


def _validate_call(tc: Any, tools: list[ToolSpec], default_id: str) -> tuple[Call | None, str | None]:
    try:
        fn = tc["function"]
        name, arguments = fn["name"], fn.get("arguments", "{}")
    except (KeyError, TypeError):
        return None, "tool call must look like {'type': 'function', 'function': {'name': ..., 'arguments': ...}}"
    specs = {t["function"]["name"]: t["function"] for t in tools}
    if name not in specs:
        known = ", ".join(sorted(specs)) or "none"
        return None, f"unknown tool {name!r} (available: {known})"
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError as e:
            return None, f"arguments of {name!r} are not valid JSON ({e.msg} at char {e.pos})"
    if not isinstance(arguments, dict):
        return None, f"arguments of {name!r} must be a JSON object"
    params = specs[name].get("parameters", {})
    missing = [p for p in params.get("required", []) if p not in arguments]
    if missing:
        return None, f"{name!r} is missing required argument(s): {', '.join(missing)}"
    unknown = [a for a in arguments if a not in params.get("properties", {})]
    if unknown and params.get("additionalProperties", True) is False:
        return None, f"{name!r} got unexpected argument(s): {', '.join(unknown)}"
    return Call(name, arguments, str(tc.get("id") or default_id)), None
