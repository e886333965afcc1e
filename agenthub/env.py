"""The environment base class and the episode contract every env is held to.

Writing an env is writing a gymnasium env: subclass `Env`, define `reset` and `step`.
`step` receives an `Action`: a `str` of the assistant's text that also reads like the
assistant message dict and carries the validated tool calls (see `agenthub.actions`),
so an env written for plain strings, for message dicts or for `Action` works unchanged.
`Env` converts whatever reaches a subclass's `step` into an `Action`, so the bare env
(`env.unwrapped`) accepts text, message dicts and its own action space's samples.

Everything the uniform API promises on top — error observations for malformed actions,
one tool message per call id, the `max_turns` limit, the `info` keys — is done once, by
`EpisodeContract`, which `agenthub.make` puts around every env (as gymnasium's `make`
puts `TimeLimit` around its envs).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable, SupportsFloat

import gymnasium

from agenthub.actions import Action, Call, parse_action
from agenthub.spaces import ActionSpace, MessageSpace
from agenthub.tool_parsers import get_tool_parser
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
            action = parse_action(action, self.tools, tool_parser=self.tool_parser)
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


class EpisodeContract(Wrapper):
    """Holds an env to DESIGN.md's contract.

    - accepts raw text, an assistant message, or model text with tool-call markup (read
      by the `tool_parser` named here, else the env's, else `hermes`);
    - a malformed action never reaches the env: it gets an error observation, reward 0,
      `reward_components["malformed_action"] = 1`, and the episode goes on;
    - every tool call gets exactly one tool message, in the order of the calls, right
      after the action: calls past the env's `max_calls_per_turn` are not run and are
      answered with an error, as is a call the env left unanswered;
    - truncates at `max_turns`;
    - `info` always has `task_id` and `reward_components`, and at episode end `success`
      and `outcome`.
    """

    def __init__(self, env: Env, env_id: str, max_turns: int | None = None, tool_parser: str | None = None):
        super().__init__(env)
        self.env_id = env_id
        self._max_turns = max_turns if max_turns is not None else env.max_turns
        self._tool_parser = tool_parser or env.tool_parser
        get_tool_parser(self._tool_parser)  # an unknown name is the caller's mistake: say so now
        self.turn = 0
        self.malformed = 0
        self.task_id = env_id
        self._done = False

    @property
    def tool_parser(self) -> str | None:  # type: ignore[override]
        return self._tool_parser

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
        parsed = parse_action(action, self.env.tools, self.turn + 1, self._tool_parser)
        if self._done:
            return self._error_turn(parsed, "the episode is over: call reset() to start a new one", end=True)
        self.turn += 1
        if not parsed.ok:
            self.malformed += 1
            return self._error_turn(parsed, "; ".join(parsed.errors))
        limit = self.env.max_calls_per_turn
        run = parsed.calls if limit is None else parsed.calls[:max(0, limit)]
        obs, reward, terminated, truncated, info = self.env.step(
            parsed if len(run) == len(parsed.calls) else parsed.with_calls(run))
        info = dict(info)
        if len(run) < len(parsed.calls):
            info["ignored_calls"] = len(parsed.calls) - len(run)
        obs = _answer_every_call(list(obs), parsed.calls, run, limit)
        return self._finish(obs, float(reward), bool(terminated), bool(truncated), info)

    def _error_turn(self, parsed: Action, error: str, end: bool = False) -> StepResult:
        text = f"Error: {error}"
        calls = parsed.message.get("tool_calls") or []
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


def _answer_every_call(obs: list[Message], calls: list[Call], run: list[Call], limit: int | None) -> list[Message]:
    """`obs` with one tool message per call, in call order, ahead of the env's other
    messages: the env's own answer where it gave one, else an error saying why not."""
    if not calls:
        return obs
    answers: dict[str, Message] = {}
    rest: list[Message] = []
    ids = {c.id for c in calls}
    for m in obs:
        cid = m.get("tool_call_id") if isinstance(m, dict) and m.get("role") == "tool" else None
        if cid in ids and cid not in answers:
            answers[cid] = m
        else:
            rest.append(m)
    ran = {c.id for c in run}
    for c in calls:
        if c.id in answers:
            continue
        why = (f"this environment runs at most {limit} tool call(s) per turn; this call was not run"
               if c.id not in ran else "the environment gave no result for this call")
        answers[c.id] = {"role": "tool", "tool_call_id": c.id, "content": f"Error: {why}."}
    return [answers[c.id] for c in calls] + rest
