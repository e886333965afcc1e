"""The one small protocol every agent implements.

An agent is called once per turn with the conversation so far and a per-episode
`Context`; it returns the assistant's output. Agents hold no per-episode state of their
own (it goes in `ctx.state`), so one agent object serves many concurrent episodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agenthub.env import Env
from agenthub.types import Message


@dataclass
class Context:
    env: Env  # for `tools` and `oracle_actions()`; agents never step it
    info: dict[str, Any]  # the env's latest info (e.g. `admissible_actions`)
    turn: int  # 0 on the first action
    sample: int = 0  # which attempt at this task (several per task for pass@k and GRPO groups)
    state: dict[str, Any] = field(default_factory=dict)  # the agent's scratch space for this episode


@dataclass
class Reply:
    """An assistant message, plus the exact tokens behind it when a local model sampled it."""

    message: Message
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    prompt_token_ids: list[int] | None = None
    token_layout: str | None = None  # "template" or "prefix": see agenthub.trainers.chat
    usage: dict[str, int] | None = None  # a served model's token counts for this turn (prompt_tokens, ...)
    info: dict[str, Any] | None = None  # facts for the turn's `info` (e.g. policy_version); the env's keys win

    @classmethod
    def of(cls, output: Any) -> Reply:
        """Whatever an agent returned, as a Reply; never raises. Anything that is not a
        Reply, text or a message is kept as it is, for the env to answer with an error."""
        if isinstance(output, Reply):
            return output
        if isinstance(output, str):
            return cls({"role": "assistant", "content": output})
        if isinstance(output, dict):
            return cls({**output, "role": "assistant"})
        return cls(output)


class ContextOverflow(Exception):
    """Raised by an agent whose model cannot fit the conversation any more; the runner
    ends the episode as truncated rather than failed."""


@runtime_checkable
class Agent(Protocol):
    name: str

    def act(self, messages: list[Message], ctx: Context) -> Reply | str | Message:
        ...
