"""The environment base class and the episode contract every env is held to.

Writing an env is writing a gymnasium env: subclass `Env`, define `reset` and `step`.
`step` receives an `Action` (the assistant message, its text and its validated tool
calls). Everything the uniform API promises on top — accepting raw text or messages,
error observations for malformed actions, the `max_turns` limit, the `info` keys —
is done once, by `EpisodeContract`, which `agenthub.make` puts around every env (as
gymnasium's `make` puts `TimeLimit` around its envs).
"""

from __future__ import annotations

import asyncio
from typing import Any, SupportsFloat

import gymnasium

from agenthub.actions import Action, parse_action
from agenthub.spaces import ActionSpace, MessageSpace
from agenthub.types import Message, ToolSpec

StepResult = tuple[list[Message], SupportsFloat, bool, bool, dict[str, Any]]


class Env(gymnasium.Env):
    """A multi-turn chat environment.

    Observations are lists of messages (on reset the system/user prompt, on step the
    new messages); `tools` lists the OpenAI function schemas the agent may call.
    Envs that know a solution override `oracle_actions`.
    """

    metadata: dict[str, Any] = {"render_modes": []}
    observation_space = MessageSpace()
    action_space = ActionSpace()
    tools: list[ToolSpec] = []
    max_turns: int | None = None
    version: str = "0"

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[list[Message], dict[str, Any]]:
        super().reset(seed=seed)
        return [], {}

    def step(self, action: Action) -> StepResult:  # type: ignore[override]
        raise NotImplementedError

    def oracle_actions(self) -> list[str | Message]:
        """A sequence of actions that solves the current episode from its start."""
        raise NotImplementedError(f"{type(self).__name__} has no oracle solution")

    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
                     ) -> tuple[list[Message], dict[str, Any]]:
        return await asyncio.to_thread(lambda: self.reset(seed=seed, options=options))

    async def astep(self, action: Any) -> StepResult:
        return await asyncio.to_thread(self.step, action)


class Wrapper(gymnasium.Wrapper, Env):
    """A gymnasium wrapper that is still an `agenthub.Env` and forwards its extras."""

    def __init__(self, env: Env):
        gymnasium.Wrapper.__init__(self, env)

    @property
    def tools(self) -> list[ToolSpec]:  # type: ignore[override]
        return self.env.tools

    @property
    def max_turns(self) -> int | None:  # type: ignore[override]
        return self.env.max_turns

    @property
    def version(self) -> str:  # type: ignore[override]
        return self.env.version

    def oracle_actions(self) -> list[str | Message]:
        return self.env.oracle_actions()


class EpisodeContract(Wrapper):
    """Holds an env to DESIGN.md's contract.

    - accepts raw text, an assistant message, or model text with tool-call markup;
    - a malformed action never reaches the env: it gets an error observation, reward 0,
      `reward_components["malformed_action"] = 1`, and the episode goes on;
    - truncates at `max_turns`;
    - `info` always has `task_id` and `reward_components`, and at episode end `success`
      and `outcome`.
    """

    def __init__(self, env: Env, env_id: str, max_turns: int | None = None):
        super().__init__(env)
        self.env_id = env_id
        self._max_turns = max_turns if max_turns is not None else env.max_turns
        self.turn = 0
        self.malformed = 0
        self.task_id = env_id
        self._done = False

    @property
    def max_turns(self) -> int | None:  # type: ignore[override]
        return self._max_turns

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[list[Message], dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.turn, self.malformed, self._done = 0, 0, False
        self.task_id = str(info.get("task_id") or (f"{self.env_id}#{seed}" if seed is not None else self.env_id))
        info = {**info, "task_id": self.task_id}
        info.setdefault("reward_components", {})
        return obs, info

    def step(self, action: Any) -> StepResult:  # type: ignore[override]
        if self._done:
            return self._error_turn(None, "the episode is over: call reset() to start a new one", end=True)
        self.turn += 1
        parsed = parse_action(action, self.env.tools, self.turn)
        if not parsed.ok:
            self.malformed += 1
            return self._error_turn(parsed, "; ".join(parsed.errors))
        obs, reward, terminated, truncated, info = self.env.step(parsed)
        return self._finish(obs, float(reward), bool(terminated), bool(truncated), dict(info))

    def _error_turn(self, parsed: Action | None, error: str, end: bool = False) -> StepResult:
        text = f"Error: {error}"
        calls = (parsed.message.get("tool_calls") or []) if parsed else []
        if calls:  # a chat transcript needs one tool answer per call made
            obs: list[Message] = [{"role": "tool", "tool_call_id": str(c.get("id", "")), "content": text}
                                  for c in calls if isinstance(c, dict)]
        else:
            obs = [{"role": "user", "content": text}]
        info = {"action_error": error, "reward_components": {"malformed_action": 1.0}}
        return self._finish(obs, 0.0, end, False, info)

    def _finish(self, obs: list[Message], reward: float, terminated: bool, truncated: bool,
                info: dict[str, Any]) -> StepResult:
        if not terminated and self._max_turns is not None and self.turn >= self._max_turns:
            truncated = True
        info["task_id"] = self.task_id
        info["turn"] = self.turn
        info["malformed_actions"] = self.malformed
        info.setdefault("reward_components", {"env": reward})
        if terminated or truncated:
            self._done = True
            info.setdefault("success", False)
            info["success"] = bool(info["success"])
            info["outcome"] = float(info.get("outcome", float(info["success"])))
        return obs, reward, terminated, truncated, info
