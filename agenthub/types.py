"""Wire types shared by every part of agenthub: chat messages, tool calls, turns and
trajectories.

Messages, tool calls and tool specs are plain dicts in OpenAI's chat format, so they go
to and from any chat server, tokenizer chat template or JSON file unchanged; the
TypedDicts below only document their shape. Turns and trajectories are dataclasses with
a lossless `to_dict` / `from_dict` round trip, the JSONL format of DESIGN.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, NotRequired, TypedDict


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


@dataclass
class Turn:
    """One agent action and what the environment answered.

    `observation` holds the messages the agent saw just before acting (on the first
    turn: the reset messages); what the last action produced is the trajectory's
    `final_observation`.
    """

    observation: list[Message]
    action: Message
    reward: float = 0.0
    reward_components: dict[str, float] = field(default_factory=dict)
    terminated: bool = False
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    token_ids: list[int] | None = None  # the sampled ids of the action, end-of-turn included
    logprobs: list[float] | None = None  # their log-probabilities under the sampling policy
    prompt_token_ids: list[int] | None = None  # ids of the observation appended before it
    token_layout: str | None = None  # how prompt_token_ids were made: "template" or "prefix" (trainers.chat)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Turn:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Trajectory:
    """One episode: the unit the runner writes, rewards score and trainers learn from."""

    env_id: str
    task_id: str
    seed: int | None
    agent: str
    turns: list[Turn] = field(default_factory=list)
    outcome: float = 0.0
    success: bool = False
    stop_reason: StopReason = "terminated"
    final_observation: list[Message] = field(default_factory=list)
    error: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def return_(self) -> float:
        return float(sum(t.reward for t in self.turns))

    def messages(self) -> list[Message]:
        """The whole conversation as a chat transcript."""
        out: list[Message] = []
        for turn in self.turns:
            out += turn.observation
            out.append(turn.action)
        return out + self.final_observation

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["return"] = self.return_
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trajectory:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names and k != "turns"}
        return cls(turns=[Turn.from_dict(t) for t in d.get("turns", [])], **kwargs)


class TrajectoryWriter:
    """Appends trajectories to a JSONL file, one complete line per write.

    Each line goes out in a single `os.write` on an O_APPEND descriptor and is flushed
    to disk, so finished episodes survive a crash or Ctrl-C; a torn tail left by an
    earlier hard crash is cut off when the file is opened again.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(self.path)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, trajectory: Trajectory) -> None:
        if self._fd is None:
            raise ValueError(f"writer for {self.path} is closed")
        record = trajectory.to_dict()
        try:
            data = (json.dumps(record, ensure_ascii=False, default=_jsonable) + "\n").encode()
        except UnicodeEncodeError:  # a lone surrogate (e.g. half an emoji a model wrote):
            # ASCII-escaped JSON keeps it as \udXXX and reads back to the same string
            data = (json.dumps(record, default=_jsonable) + "\n").encode()
        os.write(self._fd, data)
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _jsonable(value: Any) -> Any:
    """Fallback for numpy scalars and other odd values an env may put in `info`."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return repr(value)


def _cut_torn_tail(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def iter_trajectories(path: str | Path) -> Iterator[Trajectory]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n") and line.strip():
                yield Trajectory.from_dict(json.loads(line))


def read_trajectories(path: str | Path) -> list[Trajectory]:
    """Every complete trajectory in a JSONL file (a torn last line is ignored)."""
    return list(iter_trajectories(path))


def write_trajectories(path: str | Path, trajectories: list[Trajectory]) -> None:
    with TrajectoryWriter(path) as writer:
        for t in trajectories:
            writer.write(t)
