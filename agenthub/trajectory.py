"""Turns and trajectories: what an episode leaves behind, with a lossless `to_dict` /
`from_dict` round trip (the JSONL record of DESIGN.md; files: `agenthub.trajectory_io`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from agenthub.messages import Message, StopReason


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
