"""Trajectories and suites as Hugging Face `datasets` datasets (`agenthub export`).

A trajectory becomes one row:

    env_id, task_id, agent (str), seed (int or None)
    messages        the whole conversation (`Trajectory.messages()`): each message a
                    struct {role, content, tool_calls [{id, type, function {name,
                    arguments}}], tool_call_id, name, reasoning}; absent fields are None
    action_indices  per turn, the index in `messages` of that turn's action
    rewards         per turn, the immediate reward (float64)
    reward_components  per turn, a struct with one float64 field per component name
                    seen anywhere in the export (None where a turn lacks that name)
    outcome, return, duration_s (float64); success (bool); stop_reason, error (str);
    num_turns (int)

A suite's task becomes one row: suite, split, env_id, task_id, seed, kwargs (JSON
text), and with `prompts` the reset observation (`prompt`, messages as above) and the
env's tool specs (`tools`, JSON text): what a trainer needs to start each episode.

Arrow stores valid UTF-8 only, so text goes through `agenthub.actions.valid_text`: a
lone surrogate or NUL a model wrote becomes U+FFFD; content given as a list of text
parts is stored as its joined text. Everything else is kept exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agenthub.actions import valid_text
from agenthub.errors import AgentHubError
from agenthub.suites import get_suite
from agenthub.types import Trajectory, content_text


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise AgentHubError("exporting datasets needs the `datasets` package: pip install 'agenthub[datasets]'") \
            from None
    return datasets


def _message_features(d: Any) -> dict[str, Any]:
    text = d.Value("string")
    call = {"id": text, "type": text, "function": {"name": text, "arguments": text}}
    return {"role": text, "content": text, "tool_calls": d.List(call), "tool_call_id": text, "name": text,
            "reasoning": text}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        value = json.dumps(value, default=repr) if isinstance(value, (dict, list)) else str(value)
    return valid_text(value)


def _message_row(msg: Any) -> dict[str, Any]:
    """One message in the dataset's fixed message shape."""
    if not isinstance(msg, dict):
        return {"role": None, "content": _text(msg), "tool_calls": None, "tool_call_id": None, "name": None,
                "reasoning": None}
    content = msg.get("content")
    calls = msg.get("tool_calls")
    return {
        "role": _text(msg.get("role")),
        "content": content if content is None else _text(content if isinstance(content, str)
                                                          else content_text(content)[0]),
        "tool_calls": None if not isinstance(calls, list) else [_call_row(c) for c in calls],
        "tool_call_id": _text(msg.get("tool_call_id")),
        "name": _text(msg.get("name")),
        "reasoning": _text(msg.get("reasoning")),
    }


def _call_row(call: Any) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, dict) else None
    fn = fn if isinstance(fn, dict) else {}
    return {"id": _text(call.get("id")) if isinstance(call, dict) else None,
            "type": _text(call.get("type")) if isinstance(call, dict) else None,
            "function": {"name": _text(fn.get("name")), "arguments": _text(fn.get("arguments"))}}


def trajectories_dataset(trajectories: list[Trajectory]) -> Any:
    """A `datasets.Dataset` with one row per trajectory (columns: module docstring)."""
    d = _datasets()
    names = sorted({valid_text(str(name)) for t in trajectories for turn in t.turns
                    for name in turn.reward_components})
    features = d.Features({
        "env_id": d.Value("string"), "task_id": d.Value("string"), "agent": d.Value("string"),
        "seed": d.Value("int64"), "messages": d.List(_message_features(d)),
        "action_indices": d.List(d.Value("int64")), "rewards": d.List(d.Value("float64")),
        "reward_components": d.List({name: d.Value("float64") for name in names}),
        "outcome": d.Value("float64"), "success": d.Value("bool"), "stop_reason": d.Value("string"),
        "return": d.Value("float64"), "num_turns": d.Value("int64"), "error": d.Value("string"),
        "duration_s": d.Value("float64"),
    })
    rows = []
    for t in trajectories:
        indices, position = [], 0
        for turn in t.turns:
            position += len(turn.observation)
            indices.append(position)
            position += 1
        rows.append({
            "env_id": _text(t.env_id), "task_id": _text(t.task_id), "agent": _text(t.agent), "seed": t.seed,
            "messages": [_message_row(m) for m in t.messages()], "action_indices": indices,
            "rewards": [float(turn.reward) for turn in t.turns],
            "reward_components": [_components_row(turn.reward_components, names) for turn in t.turns],
            "outcome": float(t.outcome), "success": bool(t.success), "stop_reason": _text(t.stop_reason),
            "return": t.return_, "num_turns": len(t.turns), "error": _text(t.error),
            "duration_s": float(t.duration_s),
        })
    return d.Dataset.from_list(rows, features=features)


def _components_row(components: dict[str, Any], names: list[str]) -> dict[str, float | None]:
    """One turn's components under every name of the export (None where it has none)."""
    row: dict[str, float | None] = dict.fromkeys(names)
    for name, value in components.items():
        row[valid_text(str(name))] = None if value is None else float(value)
    return row


def suite_dataset(name: str, split: str | None = None, limit: int | None = None, prompts: bool = False) -> Any:
    """The tasks of suite `name`: a `datasets.Dataset` for one `split`, else a
    `datasets.DatasetDict` of every split. `limit` caps the tasks per split; `prompts`
    resets each task's env to add its first observation and tools (slow for suites
    whose tasks are generated on reset). AgentHubError for an unknown suite or split."""
    d = _datasets()
    suite = get_suite(name)
    features = {"suite": d.Value("string"), "split": d.Value("string"), "env_id": d.Value("string"),
                "task_id": d.Value("string"), "seed": d.Value("int64"), "kwargs": d.Value("string")}
    if prompts:
        features.update(prompt=d.List(_message_features(d)), tools=d.Value("string"))

    def one_split(which: str) -> Any:
        rows = [{"suite": suite.name, "split": which, "env_id": task.env_id, "task_id": task.task_id,
                 "seed": task.seed, "kwargs": json.dumps(task.kwargs, sort_keys=True, default=repr)}
                for task in suite.tasks(which, limit)]
        if prompts:
            _add_prompts(rows)
        return d.Dataset.from_list(rows, features=d.Features(features))

    if split is not None:
        return one_split(split)
    return d.DatasetDict({which: one_split(which) for which in suite.sizes})


def _add_prompts(rows: list[dict[str, Any]]) -> None:
    """Reset each row's env at its seed; one env per (env id, kwargs), closed after."""
    from agenthub.factory import make

    envs: dict[tuple[str, str], Any] = {}
    try:
        for row in rows:
            key = (row["env_id"], row["kwargs"])
            if key not in envs:
                envs[key] = make(row["env_id"], **json.loads(row["kwargs"]))
            env = envs[key]
            obs, _ = env.reset(seed=row["seed"])
            row["prompt"] = [_message_row(m) for m in obs]
            row["tools"] = json.dumps(env.tools)
    finally:
        for env in envs.values():
            env.close()


def save(dataset: Any, directory: str | Path) -> Path:
    """`dataset.save_to_disk(directory)`, refusing a directory that exists and is not
    empty (AgentHubError): an export never mixes with or replaces other files."""
    path = Path(directory)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise AgentHubError(f"{path} already exists and is not empty: export into a new directory")
    dataset.save_to_disk(str(path))
    return path
