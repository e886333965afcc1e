"""The rollout runner: N episodes of (env, agent), a bounded number at a time.

Each episode plays in its own daemon thread. What the agent gets wrong is part of the
episode: any output it returns (text, a message of any shape, even a non-message) is
parsed into an action, and a malformed one gets the env's error observation and play
goes on. Only a failure of the machinery — an exception raised by the env, the agent
or its model server — ends the episode, with stop reason `error` and `error` saying
which side failed (`env: ...` / `agent: ...`), keeping the turns played so far; an
episode past its wall-clock budget
is recorded with what it had played and stop reason `timeout`, and its thread is
abandoned, so a hung env never holds up the run. Finished trajectories go to the JSONL
file the moment they finish (see `TrajectoryWriter`), so Ctrl-C loses nothing written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from agenthub import __version__
from agenthub.actions import parse_action
from agenthub.agents.base import Agent, Context, ContextOverflow, Reply
from agenthub.env import Env
from agenthub.factory import make
from agenthub.progress import progress_bar
from agenthub.tool_parsers import DEFAULT_TOOL_PARSER
from agenthub.types import Trajectory, TrajectoryWriter, Turn


@dataclass(frozen=True)
class Episode:
    """One episode to play: which env instance, and which sample of it."""

    env_id: str
    seed: int | None = None
    sample: int = 0  # the k-th attempt at the same task (pass@k, GRPO groups)
    env_kwargs: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class _Live:
    """What the main thread needs to know about an episode still playing."""

    index: int
    episode: Episode
    trajectory: Trajectory
    started: float
    thread: threading.Thread | None = None
    env: Env | None = None
    abandoned: bool = False


# episode threads a timeout or an interrupt gave up on; weak, so finished ones do not pile
# up in a long training run
_abandoned: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


def abandoned_threads() -> list[threading.Thread]:
    """Episode threads a timeout (or an interrupted run) abandoned that are still running
    (in a hung env, or in model code); a process exiting while one is inside native code
    (torch) can abort, or hang on a lock the thread holds."""
    return [t for t in list(_abandoned) if t.is_alive()]


def run_episodes(episodes: list[Episode], agent: Agent, *, concurrency: int = 4,
                 timeout: float | None = None, out: str | Path | None = None,
                 progress: str | None = None, make_env: Callable[..., Env] = make,
                 on_trajectory: Callable[[Trajectory], None] | None = None) -> list[Trajectory]:
    """Play every episode; return their trajectories in the order of `episodes`."""
    writer = TrajectoryWriter(out) if out else None
    results: list[Trajectory | None] = [None] * len(episodes)
    done: queue.Queue[_Live] = queue.Queue()
    pending = list(enumerate(episodes))[::-1]
    live: dict[int, _Live] = {}
    progress_stack = contextlib.ExitStack()
    advance = progress_stack.enter_context(progress_bar(bool(progress), progress or "", len(episodes)))

    def finish(item: _Live, trajectory: Trajectory) -> None:
        trajectory.duration_s = time.monotonic() - item.started
        results[item.index] = trajectory
        if writer:
            _write(writer, trajectory)
        if on_trajectory:
            on_trajectory(trajectory)
        advance()

    try:
        while pending or live:
            while pending and len(live) < max(1, concurrency):
                index, episode = pending.pop()
                item = _Live(index, episode, Trajectory(episode.env_id, episode.env_id, episode.seed,
                                                        getattr(agent, "name", type(agent).__name__)),
                             time.monotonic())
                item.thread = threading.Thread(target=_play, args=(item, agent, make_env, done), daemon=True,
                                               name=f"episode-{index}")
                live[index] = item
                item.thread.start()
            wait = None
            if timeout is not None:
                wait = max(0.0, min(i.started + timeout for i in live.values()) - time.monotonic())
            try:
                item = done.get(timeout=wait)
                if not item.abandoned:
                    del live[item.index]
                    finish(item, item.trajectory)
            except queue.Empty:
                now = time.monotonic()
                for item in [i for i in live.values() if now - i.started >= timeout]:  # type: ignore[operator]
                    item.abandoned = True
                    if item.thread is not None:
                        _abandoned.add(item.thread)
                    del live[item.index]
                    snapshot = dataclasses.replace(item.trajectory, turns=list(item.trajectory.turns),
                                                   stop_reason="timeout",
                                                   error=f"episode exceeded its {timeout:g} s budget")
                    threading.Thread(target=_close_quietly, args=(item.env,), daemon=True).start()
                    finish(item, snapshot)
    finally:
        # left by an exception (Ctrl-C): the episodes still playing are abandoned too
        _abandoned.update(i.thread for i in live.values() if i.thread is not None)
        progress_stack.close()
        if writer:
            writer.close()
    return results  # type: ignore[return-value]


def _play(item: _Live, agent: Agent, make_env: Callable[..., Env], done: queue.Queue[_Live]) -> None:
    ep, traj = item.episode, item.trajectory
    side = "env"
    try:
        env = item.env = make_env(ep.env_id, **ep.env_kwargs)
        traj.provenance = {"agenthub_version": __version__, "env_version": getattr(env, "version", "0"),
                           "image_digest": getattr(env, "image_digest", None)}
        obs, info = env.reset(seed=ep.seed)
        traj.task_id = str(info.get("task_id", traj.task_id))
        ctx = Context(env, info, 0, sample=ep.sample)
        history = list(obs)
        tool_parser = getattr(agent, "tool_parser", None) or getattr(env, "tool_parser", None)
        traj.provenance["tool_parser"] = tool_parser or DEFAULT_TOOL_PARSER
        while not item.abandoned:
            t0 = time.perf_counter()
            side = "agent"
            reply = Reply.of(agent.act(history, ctx))
            # parsed here, so the turn records the normalised message the env answered
            # (parsed calls with ids, reasoning apart): transcripts stay valid chats
            action = parse_action(reply.message, env.tools, ctx.turn + 1, tool_parser)
            t1 = time.perf_counter()
            side = "env"
            next_obs, reward, terminated, truncated, info = env.step(action)
            t2 = time.perf_counter()
            traj.turns.append(Turn(
                observation=obs, action=action.message, reward=float(reward),
                reward_components=dict(info.get("reward_components", {})), terminated=terminated,
                truncated=truncated, info={**(reply.info if isinstance(reply.info, dict) else {}),
                                           **{k: v for k, v in info.items() if k != "reward_components"}},
                token_ids=reply.token_ids, logprobs=reply.logprobs, prompt_token_ids=reply.prompt_token_ids,
                token_layout=reply.token_layout,
                timings={"act_s": t1 - t0, "step_s": t2 - t1}))
            if reply.usage:  # a served model's token counts: on the turn, and summed over the episode
                traj.turns[-1].info["token_usage"] = reply.usage
                total = traj.provenance.setdefault("token_usage", {})
                for key, count in reply.usage.items():
                    total[key] = total.get(key, 0) + count
            history += [action.message, *next_obs]
            obs, ctx.info, ctx.turn = next_obs, info, ctx.turn + 1
            if terminated or truncated:
                traj.final_observation = next_obs
                traj.success, traj.outcome = bool(info.get("success")), float(info.get("outcome", 0.0))
                traj.stop_reason = "terminated" if terminated else "max_turns"
                break
    except ContextOverflow as e:
        traj.stop_reason, traj.error = "context_overflow", str(e)
    except BaseException as e:  # isolate: one broken episode (SystemExit from an agent too) never ends the run
        traj.stop_reason = "error"
        traj.error = f"{side}: {type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"
    finally:
        if not item.abandoned:
            _close_quietly(item.env)
        done.put(item)


def _write(writer: TrajectoryWriter, trajectory: Trajectory) -> None:
    """Write one trajectory; one that cannot be serialised (an env put a value JSON
    cannot hold in `info`) is written without its turns' `info`, marked `error`, so the
    run and the other episodes go on."""
    try:
        writer.write(trajectory)
    except (TypeError, ValueError, RecursionError) as e:
        trajectory.stop_reason = "error"
        trajectory.error = f"env: the trajectory could not be written as JSON ({e}); turn info dropped"
        for turn in trajectory.turns:
            turn.info = {}
        writer.write(trajectory)


def _close_quietly(env: Env | None) -> None:
    """Close an env whose episode is over; a failing close must not fail the episode."""
    try:
        if env is not None:
            env.close()
    except Exception:
        pass
