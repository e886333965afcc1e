"""What the TextWorld and ALFWorld envs share.

Both families are games played through TextWorld's engine (`textworld.core.Environment`:
`reset()` gives a game state, `step(command)` gives `(state, score, done)`), with
admissible commands, a score and a known solution. `TextGameEnv` turns such an engine
into an agenthub env once: chat observations, the optional `act` tool, dense or sparse
rewards with named components, the invalid-action flag, the per-episode turn limit
and the oracle. A family subclass only says where its games come from
(`game_source`), how to start the engine on one (`_start`) and how to tidy its text
(`_clean`).
"""

from __future__ import annotations

import json
import math
import re
from collections import deque
from typing import Any

from agenthub.actions import Action
from agenthub.env import Env, StepResult
from agenthub.errors import AgentHubError
from agenthub.types import Message, tool_spec

from .cache import CachedGame, GameSource, engine_lock, ensure_game

ACT_TOOL = tool_spec("act", "Send one command to the game, for example 'open the chest'.",
                     {"command": {"type": "string", "description": "the command, as you would type it"}})
REWARD_MODES = ("dense", "sparse")
RECAP_COMMANDS = 5  # commands a recap observation lists: enough to see a loop, short enough to read
RECAP_CHARS = 60  # of each: a model's 5,000-character "command" must not grow every later prompt


class TextGameEnv(Env):
    """A text game with admissible commands and a walkthrough, as an agenthub env.

    - `rewards="dense"`: each turn's reward is its score change (the total can reach
      `info["max_reward"]`); `"sparse"`: 1.0 on the winning turn, else 0.
      `reward_components` always has `score` (score change), `win` and
      `invalid_action` (1.0 when the command was not admissible).
    - `show_admissible`: list the admissible commands in each observation (they are in
      `info["admissible_actions"]` either way).
    - `recap`: every observation restates the state, so a policy can act from the
      latest one alone (`rollout.history=0`): the goal, the last `RECAP_COMMANDS`
      commands played (each cut to `RECAP_CHARS` characters), what the last command
      did (on the first turn, the opening text without the goal) and the admissible
      commands one per line, each line then starting as a reply does. Short,
      self-contained prompts are what the demo's from-scratch model learns from
      (bench/ablation.py).
    - `tool_mode`: the agent calls the tool `act(command)` instead of writing the command.
    - `turn_factor`: an episode is truncated after `turn_factor` x the walkthrough's
      length (at least `min_turns`); None leaves only the registered `max_turns`.
    - `reset(seed=None)` moves on to the next seed once the current game has been
      played (a fresh, unplayed game is restarted; seed 0 comes first), so an unseeded
      training loop walks through games 0, 1, 2, ... reproducibly, and resetting twice
      in a row skips nothing.
    """

    version = "0"
    max_turns: int | None = 100
    min_turns = 4
    system_prompt = "You are playing a text-based game. Each turn, reply with exactly one command."

    def __init__(self, rewards: str = "dense", show_admissible: bool = True, tool_mode: bool = False,
                 turn_factor: float | None = 2.0, recap: bool = False):
        if rewards not in REWARD_MODES:
            raise AgentHubError(f"rewards must be one of {', '.join(REWARD_MODES)}, got {rewards!r}")
        self.rewards, self.show_admissible, self.turn_factor = rewards, show_admissible, turn_factor
        self.recap = recap
        self._goal = ""
        self._played: deque[str] = deque(maxlen=RECAP_COMMANDS)  # what a recap lists, already cut
        self.tools = [ACT_TOOL] if tool_mode else []
        self._engine: Any = None
        self._engine_game: str | None = None
        self._seed: int | None = None
        self._fresh: Any = None  # the engine's start state, while no command has been played since
        self.walkthrough: list[str] = []
        self.max_score = 0.0
        self.turn_limit: int | None = None
        self._score = 0.0
        self._turns = 0
        self._admissible: list[str] = []

    # -- what a family provides ----------------------------------------------------------

    def game_source(self, seed: int) -> GameSource:
        """Where the game for `seed` comes from (and how to build it)."""
        raise NotImplementedError

    def _start(self, game: CachedGame) -> Any:
        """A `textworld.core.Environment` with `game` loaded."""
        raise NotImplementedError

    def _clean(self, text: str) -> str:
        """The engine's text without decoration; by default only trimmed."""
        return text.strip()

    def _refusal(self, command: str) -> str | None:
        """A reply for a command the engine must not receive (e.g. 'restart'), else None."""
        return None

    def _split_goal(self, opening: str) -> tuple[str, str]:
        """(the goal, the rest) of the opening text; by default the goal is its first paragraph."""
        goal, _, rest = opening.partition("\n\n")
        return goal.strip(), rest.strip()

    def _close_engine(self, engine: Any) -> None:
        """End an engine for good (ALFWorld's also holds native memory to release)."""
        engine.close()

    # -- the env ---------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[list[Message], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None:
            seed = 0 if self._seed is None else self._seed + int(self._fresh is None)
        self._seed = int(seed)
        with engine_lock:
            game = ensure_game(self.game_source(seed), seed)
            if self._engine_game != str(game.path):
                self.close()
                self._engine, self._engine_game = self._start(game), str(game.path)
            if self._fresh is None:  # resetting an unplayed game is free (ALFWorld's reset is not)
                self._fresh = self._engine.reset()
        state = self._fresh
        self.walkthrough = list(game.meta["walkthrough"])
        self.max_score = float(game.meta["max_score"])
        self.turn_limit = None
        if self.turn_factor:
            self.turn_limit = max(self.min_turns, math.ceil(self.turn_factor * len(self.walkthrough)))
        self._score, self._turns = 0.0, 0
        self._played.clear()
        self._admissible = list(state["admissible_commands"])
        system = self.system_prompt + (" Call the `act` tool with it." if self.tools else "")
        opening = self._clean(state.feedback)
        if self.recap:
            self._goal, opening = self._split_goal(opening)
        obs: list[Message] = [{"role": "system", "content": system},
                              {"role": "user", "content": self._with_admissible(opening)}]
        info = {**self._info(), "game_seed": seed, "walkthrough_length": len(self.walkthrough),
                "reward_components": {}}
        return obs, info

    def step(self, action: Action) -> StepResult:  # type: ignore[override]
        if self._engine is None:
            raise AgentHubError("call reset() before step()")
        self._fresh = None
        call = action.calls[0] if action.calls else None
        raw = call.arguments.get("command", "") if call else action.text
        command = normalize_command(str(raw))
        invalid = command not in self._admissible
        # the Z-machine takes printable ASCII only: jericho fails on other text it must truncate,
        # and frotz's output code crashes the whole process on its style codes (chars 14-21)
        refusal = self._refusal(command) if _PRINTABLE_ASCII.fullmatch(command) \
            else "That is not a command I understand."
        won = lost = False
        delta = 0.0
        if refusal is not None:
            feedback = refusal
        else:
            with engine_lock:
                state, score, _ = self._engine.step(command)
            feedback = self._clean(state.feedback)
            won, lost = bool(state["won"]), bool(state["lost"])
            delta, self._score = float(score) - self._score, float(score)
            self._admissible = list(state["admissible_commands"])
        self._turns += 1
        if self.recap:
            self._played.append(command if len(command) <= RECAP_CHARS else command[:RECAP_CHARS] + "...")
        terminated = won or lost
        truncated = not terminated and self.turn_limit is not None and self._turns >= self.turn_limit
        components = {"score": delta, "win": float(won), "invalid_action": float(invalid)}
        reward = delta if self.rewards == "dense" else float(won)
        info: dict[str, Any] = {**self._info(), "reward_components": components, "won": won, "lost": lost}
        if terminated or truncated:
            info.update(success=won, outcome=float(won))
        text = feedback if terminated else self._with_admissible(feedback)
        return self._reply(action, text), reward, terminated, truncated, info

    def oracle_actions(self) -> list[str | Message]:
        """The walkthrough: the generator's solution (TextWorld) or the expert's plan (ALFWorld)."""
        if not self.tools:
            return list(self.walkthrough)
        return [{"role": "assistant", "content": "", "tool_calls": [{
            "id": f"oracle_{i}", "type": "function",
            "function": {"name": "act", "arguments": json.dumps({"command": command})}}]}
            for i, command in enumerate(self.walkthrough)]

    def close(self) -> None:
        if self._engine is not None:
            with engine_lock:
                self._close_engine(self._engine)
        self._engine, self._engine_game, self._fresh = None, None, None

    # -- helpers ---------------------------------------------------------------------------

    def _info(self) -> dict[str, Any]:
        return {"admissible_actions": list(self._admissible), "max_reward": self.max_score, "score": self._score,
                "turn_limit": self.turn_limit}

    def _with_admissible(self, text: str) -> str:
        """An observation: `text` with the admissible commands (and, with `recap`, the goal
        and the last commands played)."""
        if self.recap:
            played = " | ".join(self._played) or "none yet"
            text = f"Goal: {self._goal}\nCommands so far: {played}\n\n{text}"
        if not self.show_admissible or not self._admissible:
            return text
        if self.recap:
            return text + "\n\nAdmissible commands:\n" + "\n".join(self._admissible)
        return f"{text}\n\nAdmissible commands: {', '.join(self._admissible)}"

    def _reply(self, action: Action, text: str) -> list[Message]:
        if not action.calls:
            return [{"role": "user", "content": text}]
        first, *rest = action.calls
        return [{"role": "tool", "tool_call_id": first.id, "content": text}] + [
            {"role": "tool", "tool_call_id": c.id, "content": "Error: one command per turn; this call was ignored."}
            for c in rest]


_SPACES = re.compile(r"\s+")
_PRINTABLE_ASCII = re.compile(r"[ -~]*")


def normalize_command(text: str) -> str:
    """Lower case, single spaces, no final period: 'Open the Chest. ' -> 'open the chest'."""
    return _SPACES.sub(" ", text).strip().rstrip(".").strip().lower()
