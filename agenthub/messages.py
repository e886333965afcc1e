"""Message types shared by every part of agenthub: chat messages, tool calls, tool specs.

Messages, tool calls and tool specs are plain dicts in OpenAI's chat format, so they go
to and from any chat server, tokenizer chat template or JSON file unchanged; the
TypedDicts below only document their shape. Turns and trajectories are in
`agenthub.trajectory`, their JSONL files in `agenthub.trajectory_io`.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NotRequired, TypedDict


class FunctionCall(TypedDict):
    name: str
    arguments: str  # a JSON object, as text (OpenAI format)


class ToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: FunctionCall


class Message(TypedDict):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]]
    tool_calls: NotRequired[list[ToolCall]]
    tool_call_id: NotRequired[str]
    name: NotRequired[str]


class FunctionSpec(TypedDict):
    name: str
    description: str
    parameters: dict[str, Any]  # a JSON schema of type "object"


class ToolSpec(TypedDict):
    type: Literal["function"]
    function: FunctionSpec


StopReason = Literal["terminated", "max_turns", "timeout", "error", "context_overflow"]


def tool_spec(name: str, description: str, properties: dict[str, Any], required: list[str] | None = None) -> ToolSpec:
    """An OpenAI function schema; `properties` maps argument names to JSON schemas."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties) if required is None else required,
            },
        },
    }


def message(role: str, content: str, **extra: Any) -> Message:
    return {"role": role, "content": content, **extra}  # type: ignore[return-value]


def tool_calls_message(calls: list[tuple[str, dict[str, Any]]], id_prefix: str = "call", content: str = "") -> Message:
    """An assistant message making these (name, arguments) tool calls, e.g. a step of an oracle's plan."""
    return {"role": "assistant", "content": content, "tool_calls": [
        {"id": f"{id_prefix}_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
        for i, (name, args) in enumerate(calls)]}


def content_text(content: Any) -> tuple[str, list[str]]:
    """The text of a message's `content` and what is wrong with its shape.

    A string is itself; None is ""; a list of OpenAI content parts gives its text parts
    joined. Anything else (a bare string or a non-text part in the list, a text part
    whose text is not a string, a number, a dict) adds an error and contributes no text.
    Never raises."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        return "", [f"content must be text, a list of text parts or null, not {type(content).__name__}"]
    texts, errors = [], []
    for i, part in enumerate(content):
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            errors.append(f'content part {i} must be {{"type": "text", "text": "..."}} (only text is read)')
    return "".join(texts), errors


def text_of(msg: Message) -> str:
    """The text of a message, whether its content is a string, a list of parts or null."""
    return content_text(msg.get("content") if isinstance(msg, dict) else msg)[0]


_ROLES = ("system", "user", "assistant", "tool")


def conversation_problems(messages: list[Any]) -> list[str]:
    """Why `messages` is not a valid OpenAI chat conversation ([] when it is).

    Checked: roles; content is a string, null or a list of text parts; every tool call
    is `{"id": str, "type": "function", "function": {"name": str, "arguments": str}}`
    with an id unique in its message; the messages right after an assistant message
    with tool calls are tool messages answering each id exactly once, and no other tool
    message appears. Extra keys (such as `reasoning`) are allowed."""
    problems: list[str] = []
    pending: list[str] = []
    for k, m in enumerate(messages):
        where = f"message {k}"
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            problems.append(f"{where}: not a message with a role in {_ROLES}")
            continue
        if content_text(m.get("content"))[1]:
            problems.append(f"{where}: content is not text, text parts or null")
        if m["role"] == "tool":
            cid = m.get("tool_call_id")
            if cid in pending:
                pending.remove(cid)
            else:
                problems.append(f"{where}: tool message for {cid!r}, which no open assistant call has")
            continue
        if pending:
            problems.append(f"{where}: calls {pending} have no tool message before it")
            pending = []
        if m["role"] == "assistant" and m.get("tool_calls") is not None:
            ids = _tool_call_ids(m["tool_calls"], where, problems)
            if len(set(ids)) != len(ids):
                problems.append(f"{where}: tool call ids repeat: {ids}")
            pending = ids
    if pending:
        problems.append(f"calls {pending} are never answered")
    return problems


def _tool_call_ids(calls: Any, where: str, problems: list[str]) -> list[str]:
    if not isinstance(calls, list):
        problems.append(f"{where}: tool_calls is not a list")
        return []
    ids = []
    for i, c in enumerate(calls):
        fn = c.get("function") if isinstance(c, dict) else None
        if not (isinstance(c.get("id") if fn is not None else None, str) and c["id"]
                and c.get("type") == "function" and isinstance(fn, dict)
                and isinstance(fn.get("name"), str) and isinstance(fn.get("arguments"), str)):
            problems.append(f"{where}: tool call {i} is not {{id, type: function, function: {{name, arguments}}}}")
            continue
        ids.append(c["id"])
    return ids
