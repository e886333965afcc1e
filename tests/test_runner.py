import threading
import time

import agenthub
from agenthub.agents import load_agent
from agenthub.env import Env
from agenthub.runner import Episode, run_episodes
from agenthub.types import read_trajectories

_release = threading.Event()


class CrashingEnv(Env):
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return [{"role": "user", "content": "go"}], {}

    def step(self, action):
        raise RuntimeError("the env blew up")

    def oracle_actions(self):
        return ["go"]


class HangingEnv(CrashingEnv):
    def step(self, action):
        _release.wait(600)  # hangs until the test releases it
        return [], 0.0, True, False, {}


agenthub.register("test/crash-v0", CrashingEnv, max_turns=5)
agenthub.register("test/hang-v0", HangingEnv, max_turns=5)


def test_crash_and_hang_are_isolated(tmp_path):
    episodes = [Episode("tools/guess-number-v0", seed=i) for i in range(18)]
    episodes.insert(5, Episode("test/crash-v0", seed=0))
    episodes.insert(12, Episode("test/hang-v0", seed=0))
    out = tmp_path / "t.jsonl"
    start = time.monotonic()
    try:
        trajs = run_episodes(episodes, load_agent("oracle"), concurrency=4, timeout=3.0, out=out)
    finally:
        _release.set()
    assert time.monotonic() - start < 60
    assert [t.env_id for t in trajs] == [e.env_id for e in episodes]  # input order
    assert trajs[5].stop_reason == "error" and "the env blew up" in trajs[5].error
    assert trajs[12].stop_reason == "timeout"
    others = [t for i, t in enumerate(trajs) if i not in (5, 12)]
    assert len(others) == 18 and all(t.success and t.stop_reason == "terminated" for t in others)
    lines = out.read_text().splitlines()
    assert len(lines) == 20
    assert sorted(t.task_id for t in read_trajectories(out)) == sorted(t.task_id for t in trajs)


def test_agent_exceptions_are_episode_errors():
    def broken_agent(messages, ctx):
        raise ValueError("agent bug")
    from agenthub.agents import CallableAgent

    [t] = run_episodes([Episode("tools/guess-number-v0", 1)], CallableAgent(broken_agent, "broken"))
    assert t.stop_reason == "error" and "agent bug" in t.error and t.turns == []


def test_trajectory_records_turns_and_timings():
    [t] = run_episodes([Episode("tools/guess-number-v0", 4)], load_agent("oracle"))
    assert t.success and t.outcome == 1.0 and t.turns[-1].terminated
    assert t.turns[0].observation[0]["role"] == "system"
    assert t.final_observation[0]["content"].endswith("correct")
    assert all("act_s" in turn.timings and "step_s" in turn.timings for turn in t.turns)
    assert t.provenance["agenthub_version"] == agenthub.__version__
    assert t.messages()[-1] == t.final_observation[-1]


class LateCrashEnv(CrashingEnv):
    """Plays two turns, then fails the way an env or its infrastructure does."""

    def reset(self, *, seed=None, options=None):
        self.steps = 0
        return super().reset(seed=seed)

    def step(self, action):
        self.steps += 1
        if self.steps > 2:
            raise ConnectionError("the container went away")
        return [{"role": "user", "content": f"step {self.steps}"}], 0.5, False, False, {"odd": {1, 2}}


agenthub.register("test/late-crash-v0", LateCrashEnv, max_turns=9)


def test_agent_mistakes_are_observations_and_env_failures_are_errors(tmp_path):
    """What an agent returns is never an episode error, whatever its shape; a failure of
    the env is one, named as the env's, with the turns played before it kept and written."""
    from agenthub.agents import CallableAgent

    outputs = [None, 42, ["a", "list"], {"role": "user", "content": 7}, {"content": None, "tool_calls": "x"},
               float("nan"), b"bytes", "32"]

    def sloppy_agent(messages, ctx):
        return outputs[ctx.turn % len(outputs)]

    out = tmp_path / "t.jsonl"
    [sloppy] = run_episodes([Episode("tools/guess-number-v0", 0)], CallableAgent(sloppy_agent, "sloppy"), out=out)
    [late] = run_episodes([Episode("test/late-crash-v0", 0)], load_agent("oracle"), out=out)
    assert sloppy.stop_reason == "max_turns" and len(sloppy.turns) == 10 and sloppy.error is None
    assert [bool(t.reward_components.get("malformed_action")) for t in sloppy.turns[:8]] == [True] * 7 + [False]
    assert all(t.action["role"] == "assistant" and isinstance(t.action["content"], str) for t in sloppy.turns)
    assert late.stop_reason == "error" and late.error.startswith("env: ConnectionError")
    assert len(late.turns) == 2 and late.return_ == 1.0
    assert [t.stop_reason for t in read_trajectories(out)] == ["max_turns", "error"]
