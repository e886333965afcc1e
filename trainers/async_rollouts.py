"""Overlapped rollouts with a staleness bound (`rollout.max_staleness` = k >= 1).

A producer thread plays the rollouts of steps n+1..n+k while the trainer trains step n;
the trainer takes each step's rollouts in order. Three pieces:

- `VersionedEngine` wraps the rollout engine: one call at a time (generation, scoring,
  a weight load), and a version counter, the RL steps the weights it serves have taken,
  which goes up by one at each `load_weights`. The transformers engine samples from its
  own copy of the weights (`HFEngine.use_private_copy`), so the optimizer updates the
  live model while a turn is being generated; the copy changes only under the lock,
  between two batched calls. An episode in flight simply has its next turn served by
  the new weights, and every turn records which version served it (`policy_version`
  in the turn's info, through `PolicyAgent`).
- `OverlappedRollouts` is the producer: step s starts once the weights are at version
  s - 1 - k or newer, so a rollout can never start more than k versions behind the
  weights that train on it.
- `fresh_groups` is the guarantee the loss relies on, whatever the producer did: a
  rollout any of whose turns is more than k versions behind the weights being trained
  (version step - 1 at step `step`) is dropped before scoring, and counted.

Staleness of a rollout trained at step n: (n - 1) - the oldest version among its turns;
0 is on-policy.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from agenthub.errors import AgentHubError
from agenthub.trainers.engine import Generation
from agenthub.types import Trajectory


class VersionedEngine:
    """An engine shared by a rollout producer and the trainer, with the policy version
    of the weights it serves. Same interface as the engine it wraps (generate, score,
    load_weights); no `sleep`: under overlap the rollout weights stay resident."""

    def __init__(self, engine: Any, version: int):
        if hasattr(engine, "use_private_copy"):
            engine.use_private_copy()
        self.engine, self.version = engine, version
        self.eos_token_id = engine.eos_token_id
        self._changed = threading.Condition()  # its lock serialises every call into the engine
        self._served = threading.local()
        self._stopped = False

    def generate(self, prompts: list[list[int]], seeds: list[int], *, max_new_tokens: int,
                 temperature: float) -> list[Generation]:
        """The wrapped engine's `generate`. Raises AgentHubError once `stop` was called."""
        with self._changed:
            self._check_running()
            out = self.engine.generate(prompts, seeds, max_new_tokens=max_new_tokens, temperature=temperature)
            self._served.version = self.version
        return out

    def score(self, prompts: list[list[int]], candidates: list[list[list[int]]], *,
              temperature: float) -> list[list[list[float]]]:
        """The wrapped engine's `score`. Raises AgentHubError once `stop` was called."""
        with self._changed:
            self._check_running()
            out = self.engine.score(prompts, candidates, temperature=temperature)
            self._served.version = self.version
        return out

    def served_version(self) -> int | None:
        """The version that served this thread's last generate/score call (None before one)."""
        return getattr(self._served, "version", None)

    def load_weights(self, model: Any) -> None:
        """Take the trainer's weights after an RL step: the version goes up by one."""
        with self._changed:
            self.engine.load_weights(model)
            self.version += 1
            self._changed.notify_all()

    def wait_for(self, version: int) -> bool:
        """Block until the weights are at `version` or newer; False if stopped first."""
        with self._changed:
            self._changed.wait_for(lambda: self._stopped or self.version >= version)
            return not self._stopped

    def stop(self) -> None:
        """Refuse every further call (episodes in flight end with an error) and wake waiters."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def _check_running(self) -> None:
        if self._stopped:
            raise AgentHubError("rollouts stopped: the trainer has finished")


@dataclass
class PlayedStep:
    """One step's rollouts, as the producer played them."""

    step: int
    trajectories: list[Trajectory]
    seconds: float  # wall time of playing them (overlapping the trainer's work)
    tokens: int  # tokens the policy generated for them


class OverlappedRollouts:
    """Plays steps `first`..`last` in a background thread, each through `play(step)`,
    at most `max_staleness` steps ahead of the weights; `take(step)` hands them over in
    order. A context manager: leaving it stops the producer (episodes in flight end)."""

    def __init__(self, play: Callable[[int], list[Trajectory]], engine: VersionedEngine, agent: Any,
                 first: int, last: int, max_staleness: int, stop_timeout_s: float = 60.0):
        self.play, self.engine, self.agent = play, engine, agent
        self.first, self.last, self.max_staleness = first, last, max_staleness
        self.stop_timeout_s = stop_timeout_s
        self._ready: queue.Queue[PlayedStep | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._produce, daemon=True, name="rollout-producer")

    def __enter__(self) -> OverlappedRollouts:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.engine.stop()
        self._thread.join(self.stop_timeout_s)  # a hung env must not hold the run: the thread is a daemon

    def _produce(self) -> None:
        try:
            for step in range(self.first, self.last + 1):
                if not self.engine.wait_for(step - 1 - self.max_staleness):
                    return
                tokens, t0 = self.agent.generated_tokens, time.perf_counter()
                trajectories = self.play(step)
                self._ready.put(PlayedStep(step, trajectories, time.perf_counter() - t0,
                                           self.agent.generated_tokens - tokens))
        except BaseException as e:  # handed to the trainer, which raises it
            self._ready.put(e)

    def take(self, step: int) -> PlayedStep:
        """Step `step`'s rollouts, waiting for them. Raises what the producer raised."""
        played = self._ready.get()
        if isinstance(played, BaseException):
            raise AgentHubError(f"the rollout producer failed: {type(played).__name__}: {played}") from played
        if played.step != step:
            raise AgentHubError(f"rollouts of step {played.step} arrived for step {step}")
        return played


def trajectory_versions(trajectory: Trajectory) -> list[int]:
    """The policy version recorded on each turn that has one."""
    return [v for t in trajectory.turns if isinstance(v := t.info.get("policy_version"), int)
            and not isinstance(v, bool)]


def staleness(trajectory: Trajectory, step: int) -> int | None:
    """How many versions the rollout's oldest turn is behind the weights step `step`
    trains (version step - 1); None when no turn recorded a version."""
    versions = trajectory_versions(trajectory)
    return step - 1 - min(versions) if versions else None


def fresh_groups(groups: list[list[Trajectory]], step: int,
                 max_staleness: int) -> tuple[list[list[Trajectory]], dict[str, float]]:
    """The groups without rollouts more than `max_staleness` versions stale, and the
    step's staleness metrics: `samples_stale_dropped`, and `staleness_mean` /
    `staleness_max` over the rollouts kept (0 when none recorded a version)."""
    kept_groups, dropped, kept_staleness = [], 0, []
    for group in groups:
        kept = []
        for trajectory in group:
            s = staleness(trajectory, step)
            if s is not None and s > max_staleness:
                dropped += 1
                continue
            kept.append(trajectory)
            if s is not None:
                kept_staleness.append(s)
        kept_groups.append(kept)
    return kept_groups, {
        "samples_stale_dropped": dropped,
        "staleness_mean": sum(kept_staleness) / len(kept_staleness) if kept_staleness else 0.0,
        "staleness_max": max(kept_staleness, default=0),
    }
