"""The episode contract every env made by `agenthub.make` is held to (`EpisodeContract`):
action parsing, error observations, one answer per tool call, truncation, info keys."""

from __future__ import annotations

from typing import Any

from agenthub.actions import Action, Call, parse_action
from agenthub.env import Env, StepResult, Wrapper
from agenthub.tool_parsers import get_tool_parser
from agenthub.types import Message


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
        self._end: tuple[bool, bool, dict[str, Any]] = (False, False, {})  # how the episode ended

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
        if self._done:  # answered, with the flags and outcome the episode ended with (a truncated one stays so)
            obs, _, _, _, info = self._error_turn(parsed, "the episode is over: call reset() to start a new one")
            terminated, truncated, ending = self._end
            return obs, 0.0, terminated, truncated, {**info, **ending}
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

    def _error_turn(self, parsed: Action, error: str) -> StepResult:
        text = f"Error: {error}"
        calls = parsed.message.get("tool_calls") or []
        if calls:  # a chat transcript needs one tool answer per call made
            obs: list[Message] = [{"role": "tool", "tool_call_id": str(c.get("id", "")), "content": text}
                                  for c in calls if isinstance(c, dict)]
        else:
            obs = [{"role": "user", "content": text}]
        info = {"action_error": error, "reward_components": {"malformed_action": 1.0}}
        return self._finish(obs, 0.0, False, False, info)

    def _finish(self, obs: list[Message], reward: float, terminated: bool, truncated: bool,
                info: dict[str, Any]) -> StepResult:
        if not terminated and self._max_turns is not None and self.turn >= self._max_turns:
            truncated = True
        info["task_id"] = self.task_id
        info["turn"] = self.turn
        info["malformed_actions"] = self.malformed
        info.setdefault("reward_components", {"env": reward})
        if self._done:
            return obs, reward, terminated, truncated, info
        if terminated or truncated:
            self._done = True
            info.setdefault("success", False)
            info["success"] = bool(info["success"])
            info["outcome"] = float(info.get("outcome", float(info["success"])))
            self._end = (terminated, truncated, {"success": info["success"], "outcome": info["outcome"]})
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
