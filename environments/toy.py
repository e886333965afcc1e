"""A synthetic multi-turn env small enough to show RL learning on a CPU in a minute.

A corridor of rooms: in each, a lamp's colour names the safe door; the wrong door
ends the episode. A policy that ignores the lamp wins with probability
(1/doors)^rooms (12.5% with 2 doors and 3 rooms); one that reads it always wins. The
right door changes from room to room and seed to seed, so nothing short of reading
the observation works, and a fresh model must learn it from reward alone. Each safe
door pays an immediate reward of 0.1 (for turn-level and gated rewards); winning is
the outcome.

Not registered with the built-in families: `register_toy_env()` registers it (the
trainer's tests call it; so can a user who wants a one-minute smoke test of a config).
"""

from __future__ import annotations

from typing import Any

from agenthub.actions import Action
from agenthub.env import Env, StepResult
from agenthub.types import Message

COLOURS = ("red", "blue", "green", "white")


class LampCorridorEnv(Env):
    version = "0"

    def __init__(self, rooms: int = 3, doors: int = 2):
        self.rooms, self.colours = rooms, COLOURS[:doors]
        self.lamps: list[str] = []
        self.room = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[list[Message], dict[str, Any]]:
        super().reset(seed=seed)
        self.lamps = [str(self.np_random.choice(self.colours)) for _ in range(self.rooms)]
        self.room = 0
        return [{"role": "system", "content": "Walk through the corridor. In each room, go through the "
                                              "door of the lamp's colour."},
                {"role": "user", "content": self._describe()}], self._info()

    def step(self, action: Action) -> StepResult:  # type: ignore[override]
        command = action.text.strip().lower()
        if command not in self._info()["admissible_actions"]:
            obs = f"Unknown command. Try: {', '.join(self._info()['admissible_actions'])}."
            return [{"role": "user", "content": obs}], 0.0, False, False, {
                **self._info(), "reward_components": {"door": 0.0, "invalid": 1.0}}
        if command != f"go {self.lamps[self.room]}":
            return [{"role": "user", "content": "The floor gives way. You fall."}], 0.0, True, False, {
                **self._info(), "reward_components": {"door": 0.0}, "success": False, "outcome": 0.0}
        self.room += 1
        info = {**self._info(), "reward_components": {"door": 0.1}}
        if self.room == self.rooms:
            return [{"role": "user", "content": "You reach the garden. You win!"}], 0.1, True, False, {
                **info, "success": True, "outcome": 1.0}
        return [{"role": "user", "content": self._describe()}], 0.1, False, False, info

    def _describe(self) -> str:
        return (f"Room {self.room + 1} of {self.rooms}. The lamp is {self.lamps[self.room]}. "
                f"Doors: {', '.join(self.colours)}.")

    def _info(self) -> dict[str, Any]:
        return {"admissible_actions": [f"go {c}" for c in self.colours]}

    def oracle_actions(self) -> list[str | Message]:
        return [f"go {c}" for c in self.lamps]


ENV_ID, SUITE = "toy/lamp-corridor-v0", "toy/lamp-corridor"


def register_toy_env() -> None:
    """Register the env and its suite (train 1000 / test 100 seeds): called by tests, not at import."""
    from agenthub.registry import register
    from agenthub.suites import register_suite

    register(ENV_ID, "agenthub.environments.toy:LampCorridorEnv", max_turns=6,
             description="Synthetic: follow the lamps through 3 rooms (trainer tests).")
    register_suite(SUITE, ENV_ID, train=1000, test=100, description="Lamp corridor games; the seed sets the lamps.")
