"""Uniformly random admissible actions: the floor every trained agent must beat."""

from __future__ import annotations

import random

from agenthub.agents.base import Context
from agenthub.types import Message


class RandomAgent:
    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def act(self, messages: list[Message], ctx: Context) -> str:
        # bytes, so a task id with a lone surrogate (an env echoing a web page) still seeds;
        # for any other id this is the same seed as the str
        key = f"{self.seed}:{ctx.info.get('task_id')}:{ctx.sample}".encode("utf-8", "surrogatepass")
        rng = ctx.state.setdefault("rng", random.Random(key))
        choices = ctx.info.get("admissible_actions") or []
        return rng.choice(choices) if choices else rng.choice(["look", "help", "wait", "yes", "no"])
