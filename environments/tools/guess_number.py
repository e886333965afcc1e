"""Guess the number: the reference env, small enough for core tests.

It has a tool (`guess`), dense rewards (how much each answer narrows the range), a
win/lose outcome and an oracle (binary search), so it exercises every part of the
multi-turn contract with no heavy dependency.
"""

from __future__ import annotations

import re
from typing import Any

from agenthub.actions import Action
from agenthub.env import Env, StepResult
from agenthub.types import Message, tool_spec

_INT = re.compile(r"-?\d+")


class GuessNumberEnv(Env):
    tools = [tool_spec("guess", "Guess the secret number.", {"number": {"type": "integer"}})]
    version = "0"
    max_calls_per_turn = 1  # one guess per turn: the contract answers extra calls with an error

    def __init__(self, low: int = 1, high: int = 64, max_turns: int = 10):
        self.low, self.high, self.max_turns = low, high, max_turns
        self.secret = low
        self.lo, self.hi = low, high

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[list[Message], dict[str, Any]]:
        super().reset(seed=seed)
        self.secret = int(self.np_random.integers(self.low, self.high + 1))
        self.lo, self.hi = self.low, self.high
        prompt = (f"I am thinking of an integer between {self.low} and {self.high}. Find it in at most "
                  f"{self.max_turns} guesses. Call the `guess` tool with your guess (or just write the "
                  f"number); I answer 'higher', 'lower' or 'correct'.")
        return ([{"role": "system", "content": "You are playing a guessing game."},
                 {"role": "user", "content": prompt}], self._info())

    def step(self, action: Action) -> StepResult:  # type: ignore[override]
        if action.calls:
            call = action.calls[0]
            value, reply_role = call.arguments.get("number"), {"role": "tool", "tool_call_id": call.id}
        else:
            found = _INT.search(action.text)
            value, reply_role = (found.group() if found else None), {"role": "user"}
        guess = _integer(value)
        if guess is None:
            problem = ("no number: call `guess` or write one" if value is None
                       else f"{str(value)[:40]!r} is not an integer.")
            obs = [{**reply_role, "content": problem}]
            return obs, 0.0, False, False, {**self._info(), "reward_components": {"progress": 0.0, "invalid": 1.0}}
        width_before = self.hi - self.lo
        if guess == self.secret:
            answer, self.lo, self.hi = "correct", guess, guess
        elif guess < self.secret:
            answer, self.lo = "higher", max(self.lo, guess + 1)
        else:
            answer, self.hi = "lower", min(self.hi, guess - 1)
        progress = (width_before - (self.hi - self.lo)) / max(1, self.high - self.low)
        won = answer == "correct"
        info = {**self._info(), "reward_components": {"progress": progress, "win": float(won)}}
        if won:
            info.update(success=True, outcome=1.0)
        return [{**reply_role, "content": f"{guess}: {answer}"}], progress + float(won), won, False, info

    def _info(self) -> dict[str, Any]:
        return {"admissible_actions": [str(n) for n in range(self.low, self.high + 1)]}

    def oracle_actions(self) -> list[str | Message]:
        """Binary search, played out against the secret."""
        lo, hi, plan = self.low, self.high, []
        while True:
            mid = (lo + hi) // 2
            plan.append({"role": "assistant", "content": "", "tool_calls": [{
                "id": f"oracle_{len(plan)}", "type": "function",
                "function": {"name": "guess", "arguments": f'{{"number": {mid}}}'}}]})
            if mid == self.secret:
                return plan
            lo, hi = (mid + 1, hi) if mid < self.secret else (lo, mid - 1)


def _integer(value: Any) -> int | None:
    """An int, an integral float or a string of digits as an int; None for anything else
    (bools included: JSON `true` is not the guess 1)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
