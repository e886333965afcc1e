"""The environment base class, and `Wrapper` for envs around envs.

Writing an env is writing a gymnasium env: subclass `Env`, define `reset` and `step`.
`step` receives an `Action`: a `str` of the assistant's text that also reads like the
assistant message dict and carries the validated tool calls (see `agenthub.actions`),
so an env written for plain strings, for message dicts or for `Action` works unchanged.
`Env` converts whatever reaches a subclass's `step` into an `Action`, so the bare env
(`env.unwrapped`) accepts text, message dicts and its own action space's samples.

Everything the uniform API promises on top — error observations for malformed actions,
one tool message per call id, the `max_turns` limit, the `info` keys — is done once, by
`agenthub.contract.EpisodeContract`, which `agenthub.make` puts around every env (as
gymnasium's `make` puts `TimeLimit` around its envs).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable, SupportsFloat

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
    # How many tool calls one turn may run; the contract answers the rest with an error
    # tool message (None: no limit, the env answers every call itself).
    max_calls_per_turn: int | None = None
    tool_parser: str | None = None  # how model text is read for calls (None: `hermes`)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None and not issubclass(cls, gymnasium.Wrapper):
            cls.step = _accepting_any_action(step)  # type: ignore[method-assign]

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


def _accepting_any_action(step: Callable[..., StepResult]) -> Callable[..., StepResult]:
    """`step`, called with the action as an `Action` whatever form it was given in."""
    if getattr(step, "accepts_any_action", False):
        return step

    @functools.wraps(step)
    def step_any(self: Env, action: Any, *args: Any, **kwargs: Any) -> StepResult:
        if not isinstance(action, Action):
            # a count of this env's steps numbers the generated call ids, so they differ across turns
            self._raw_steps = getattr(self, "_raw_steps", 0) + 1
            action = parse_action(action, self.tools, self._raw_steps, tool_parser=self.tool_parser)
        return step(self, action, *args, **kwargs)

    step_any.accepts_any_action = True  # type: ignore[attr-defined]
    return step_any


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

    @property
    def max_calls_per_turn(self) -> int | None:  # type: ignore[override]
        return self.env.max_calls_per_turn

    @property
    def tool_parser(self) -> str | None:  # type: ignore[override]
        return self.env.tool_parser

    def oracle_actions(self) -> list[str | Message]:
        return self.env.oracle_actions()
