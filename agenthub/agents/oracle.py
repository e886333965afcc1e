"""Plays the env's own solution (`env.oracle_actions()`), an upper bound and a check
that every task is solvable."""

from __future__ import annotations

from agenthub.agents.base import Context
from agenthub.types import Message


class OracleAgent:
    name = "oracle"

    def act(self, messages: list[Message], ctx: Context) -> str | Message:
        plan = ctx.state.get("plan")
        if plan is None:
            plan = ctx.state["plan"] = list(ctx.env.oracle_actions())
        return plan.pop(0) if plan else "submit"
