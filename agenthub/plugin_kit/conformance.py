"""The conformance suite: DESIGN.md's env contract, checked on any registered env.

`run_checks(env_id)` makes the env through the registry (so plugins are checked exactly
as users will meet them) and runs, in order:

- `check_env`, `check_env (unwrapped)`: gymnasium's own checker on the made env and on
  the bare env under the episode contract;
- `deterministic reset`: the same seed gives the same observation and task id, on the
  same env and on a freshly made one;
- `hostile actions`: a fixed sample of malformed input (`plugin_kit.hostile`) never
  raises; every answer is a valid observation with a finite reward and the info keys
  DESIGN.md promises, and the env still resets to the same start afterwards;
- `oracle wins`: where the env has an oracle, playing it wins each checked seed;
- `trajectory round trip`: episodes (the oracle's and a hostile agent's) written as
  JSONL read back into identical trajectories;
- `valid transcripts`: those episodes' transcripts are valid OpenAI chats (every tool
  call answered by exactly one tool message, right after it);
- `close`: `close` may be called twice (and before any reset), and make/reset/step/close
  cycles leave no child process, file descriptor or thread behind.

Every check runs even when an earlier one failed (except when the env cannot be made),
so one run shows everything that is wrong. Each result is `pass`, `fail` (with the first
thing that went wrong) or `skip` (with why the check does not apply).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from agenthub.env import Env
from agenthub.plugin_kit.footprint import footprint, settled_footprint
from agenthub.plugin_kit.hostile import hostile_actions
from agenthub.factory import make
from agenthub.registry import spec
from agenthub.types import Trajectory, conversation_problems, read_trajectories, write_trajectories

Status = Literal["pass", "fail", "skip"]


@dataclass
class CheckResult:
    name: str
    status: Status
    detail: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "seconds": round(self.seconds, 3)}


class Skip(Exception):
    """Raised by a check that does not apply to this env; its message says why."""


class Failed(AssertionError):
    """Raised by a check that found the env breaking the contract; its message says how."""


@dataclass
class _Target:
    env_id: str
    seeds: list[int]
    cycles: int
    episode_timeout: float
    kwargs: dict[str, Any] = field(default_factory=dict)
    trajectories: list[Trajectory] = field(default_factory=list)  # the oracle's, played by its check
    _hostile: list[Trajectory] | None = field(default=None, init=False, repr=False)

    def make(self, **extra: Any) -> Env:
        return make(self.env_id, **{**self.kwargs, **extra})

    def hostile_episodes(self) -> list[Trajectory]:
        """The hostile sample played once through the real runner (one turn per action);
        Failed when the episode ended in an error."""
        if self._hostile is None:
            from agenthub.agents import CallableAgent
            from agenthub.runner import Episode, run_episodes

            turns = len(hostile_actions([]))
            self._hostile = run_episodes([Episode(self.env_id, self.seeds[0], env_kwargs=self.kwargs)],
                                         CallableAgent(_hostile_agent, "hostile"), concurrency=1,
                                         timeout=self.episode_timeout,
                                         make_env=lambda env_id, **kw: make(env_id, max_turns=turns, **kw))
        for traj in self._hostile:
            if traj.stop_reason == "error":
                raise Failed(f"the hostile episode ended in an error: {(traj.error or '')[:200]}")
        return self._hostile


def run_checks(env_id: str, seeds: list[int] | None = None, cycles: int = 3, episode_timeout: float = 300.0,
               on_result: Callable[[CheckResult], None] | None = None, **env_kwargs: Any) -> list[CheckResult]:
    """Run every check on `env_id` (made with `env_kwargs`), in order.

    `seeds`: the tasks played (default [0, 1]); `cycles`: make/reset/step/close cycles
    of the leak check; `episode_timeout`: seconds allowed per played episode.
    `on_result` sees each result as it is decided (for live output). Never raises for
    anything the env does; UnknownEnvError for an id that is not registered."""
    target = _Target(spec(env_id).id, list(seeds if seeds is not None else [0, 1]), cycles, episode_timeout,
                     env_kwargs)
    results: list[CheckResult] = []

    def record(result: CheckResult) -> None:
        results.append(result)
        if on_result:
            on_result(result)

    made = _run("make", lambda: _check_make(target))
    record(made)
    for name, check in CHECKS:
        if made.status == "fail":
            record(CheckResult(name, "skip", "the env could not be made"))
        else:
            record(_run(name, lambda: check(target)))
    return results


def _run(name: str, check: Callable[[], str]) -> CheckResult:
    start = time.monotonic()
    try:
        with warnings.catch_warnings():  # what hostile input makes an env warn about is expected
            warnings.simplefilter("ignore")
            status, detail = "pass", check()
    except Skip as e:
        status, detail = "skip", str(e)
    except Failed as e:
        status, detail = "fail", str(e)
    except Exception as e:  # the env raised: that is the finding, with where it came from
        status, detail = "fail", f"raised {_one_line(e)}{_where(e)}"
    return CheckResult(name, status, detail, time.monotonic() - start)  # type: ignore[arg-type]


def _one_line(e: BaseException) -> str:
    text = (str(e).strip().splitlines() or [""])[0][:200]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _where(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    return f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""


def _closing(env: Env, body: Callable[[Env], str]) -> str:
    try:
        return body(env)
    finally:
        env.close()


def _check_make(t: _Target) -> str:
    env = t.make()
    env.close()
    return type(env.unwrapped).__qualname__


def _check_env(t: _Target, unwrapped: bool) -> str:
    from gymnasium.utils.env_checker import check_env

    def body(env: Env) -> str:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env.unwrapped if unwrapped else env, skip_render_check=True)
        # gymnasium always warns that a wrapped env differs from its unwrapped one: checked next
        said = [re.sub(r"\x1b\[[0-9;]*m|^WARN: ", "", str(w.message)) for w in caught
                if "different from the unwrapped version" not in str(w.message)]
        return f"gymnasium warned: {said[0][:120]}" + (f" (+{len(said) - 1} more)" if len(said) > 1 else "") \
            if said else ""

    return _closing(t.make(), body)


def _check_deterministic_reset(t: _Target) -> str:
    for seed in t.seeds:
        first, again = t.make(), t.make()
        try:
            obs1, info1 = first.reset(seed=seed)
            obs2, info2 = first.reset(seed=seed)
            obs3, info3 = again.reset(seed=seed)
        finally:
            first.close()
            again.close()
        if not first.observation_space.contains(obs1) or not isinstance(info1, dict):
            raise Failed(f"seed {seed}: reset did not return (list of chat messages, info dict): {str(obs1)[:120]}")
        if obs1 != obs2:
            raise Failed(f"seed {seed}: reset twice on one env gave different observations")
        if obs1 != obs3:
            raise Failed(f"seed {seed}: two envs reset with the same seed gave different observations")
        if not info1.get("task_id") or not info1["task_id"] == info2.get("task_id") == info3.get("task_id"):
            raise Failed(f"seed {seed}: task ids {info1.get('task_id')!r}, {info2.get('task_id')!r}, "
                         f"{info3.get('task_id')!r} differ or are empty")
    return f"seeds {t.seeds}"


def _check_step_result(result: Any, env: Env, what: str) -> tuple[bool, bool, dict[str, Any]]:
    """Raise Failed unless `result` is a step result DESIGN.md allows."""
    if not (isinstance(result, tuple) and len(result) == 5):
        raise Failed(f"{what}: step returned {type(result).__name__}, not a 5-tuple")
    obs, reward, terminated, truncated, info = result
    if not env.observation_space.contains(obs):
        raise Failed(f"{what}: the observation is not a list of chat messages: {str(obs)[:120]}")
    if not isinstance(reward, (int, float)) or not math.isfinite(reward):
        raise Failed(f"{what}: reward {reward!r} is not a finite number")
    if not isinstance(info, dict) or "task_id" not in info or not isinstance(info.get("reward_components"), dict):
        raise Failed(f"{what}: info lacks task_id or a reward_components dict")
    if not all(isinstance(v, (int, float)) for v in info["reward_components"].values()):
        raise Failed(f"{what}: a reward component is not a number: {info['reward_components']}")
    if terminated or truncated:
        if not isinstance(info.get("success"), bool) or not isinstance(info.get("outcome"), float):
            raise Failed(f"{what}: the episode ended without a bool `success` and a float `outcome` in info")
    return bool(terminated), bool(truncated), info


def _check_hostile_actions(t: _Target) -> str:
    def body(env: Env) -> str:
        seed = t.seeds[0]
        start, _ = env.reset(seed=seed)
        actions = hostile_actions(env.tools)
        errors = 0
        for label, action in actions:
            try:
                result = env.step(action)
            except Exception as e:
                raise Failed(f"action {label!r} raised {_one_line(e)}{_where(e)}") from None
            terminated, truncated, info = _check_step_result(result, env, f"action {label!r}")
            errors += "action_error" in info
            if terminated or truncated:
                env.reset(seed=seed)
        if env.reset(seed=seed)[0] != start:
            raise Failed(f"after the hostile actions, reset(seed={seed}) no longer gives the same observation")
        return f"{len(actions)} actions, {errors} answered as malformed"

    return _closing(t.make(), body)


def _check_oracle(t: _Target) -> str:
    from agenthub.agents.oracle import OracleAgent
    from agenthub.runner import Episode, run_episodes

    env = t.make()
    try:
        env.reset(seed=t.seeds[0])
        env.oracle_actions()
    except NotImplementedError:
        raise Skip("the env has no oracle (oracle_actions)") from None
    finally:
        env.close()
    played = run_episodes([Episode(t.env_id, seed, env_kwargs=t.kwargs) for seed in t.seeds], OracleAgent(),
                          concurrency=1, timeout=t.episode_timeout)
    t.trajectories += played
    for seed, traj in zip(t.seeds, played):
        if traj.error or traj.stop_reason != "terminated" or not traj.success:
            why = traj.error or f"stop reason {traj.stop_reason}, success {traj.success}, outcome {traj.outcome}"
            raise Failed(f"seed {seed}: the oracle did not win ({why[:200]})")
    return f"won seeds {t.seeds} in {', '.join(str(len(tr.turns)) for tr in played)} turns"


def _hostile_agent(messages: list[Any], ctx: Any) -> Any:
    """Plays the hostile sample in order (then empty text), through the real runner."""
    actions = ctx.state.setdefault("actions", [a for _, a in hostile_actions(ctx.env.tools)])
    return actions.pop(0) if actions else ""


def _check_round_trip(t: _Target) -> str:
    trajectories = t.trajectories + t.hostile_episodes()
    with tempfile.TemporaryDirectory(prefix="agenthub-check-") as tmp:
        path = Path(tmp) / "trajectories.jsonl"
        write_trajectories(path, trajectories)
        back = read_trajectories(path)
    if len(back) != len(trajectories):
        raise Failed(f"wrote {len(trajectories)} trajectories, read back {len(back)}")
    for before, after in zip(trajectories, back):
        if _canonical(before) != _canonical(after) or _canonical(Trajectory.from_dict(before.to_dict())) \
                != _canonical(before):
            raise Failed(f"trajectory {before.task_id!r} changed in the JSON round trip")
    return f"{len(trajectories)} trajectories, {sum(len(x.turns) for x in trajectories)} turns"


def _check_transcripts(t: _Target) -> str:
    trajectories = t.trajectories + t.hostile_episodes()
    for traj in trajectories:
        problems = conversation_problems(traj.messages())
        if problems:
            raise Failed(f"the transcript of {traj.task_id!r} ({traj.agent}) is no valid chat: {problems[0][:160]}")
    return f"{len(trajectories)} transcripts, {sum(len(x.messages()) for x in trajectories)} messages"


def _canonical(traj: Trajectory) -> str:
    # JSON text compares NaN equal to NaN and ignores dict order, as the file does
    return json.dumps(traj.to_dict(), sort_keys=True, default=repr)


def _check_close(t: _Target) -> str:
    def cycle(seed: int) -> None:
        env = t.make()
        try:
            env.reset(seed=seed)
            env.step("look")
        finally:
            env.close()
        env.close()
        env.unwrapped.close()
        never_reset = t.make()
        never_reset.close()
        never_reset.close()

    cycle(t.seeds[0])  # warm up: imports, caches and generated tasks are no leak
    before = footprint()
    for i in range(t.cycles):
        cycle(t.seeds[i % len(t.seeds)])
    left = settled_footprint(before).left_since(before)
    if any(left.values()):
        raise Failed(f"after {t.cycles} make/reset/step/close cycles: "
                     + ", ".join(f"{n} {what}" for what, n in left.items() if n) + " left behind")
    return f"{t.cycles} cycles, close twice: nothing left behind"


CHECKS: list[tuple[str, Callable[[_Target], str]]] = [
    ("check_env", lambda t: _check_env(t, unwrapped=False)),
    ("check_env (unwrapped)", lambda t: _check_env(t, unwrapped=True)),
    ("deterministic reset", _check_deterministic_reset),
    ("hostile actions", _check_hostile_actions),
    ("oracle wins", _check_oracle),
    ("trajectory round trip", _check_round_trip),
    ("valid transcripts", _check_transcripts),
    ("close", _check_close),
]
