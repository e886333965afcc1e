"""The SWE env end to end, in real sandboxes: bwrap always, docker when a daemon answers."""

import json
import time

import pytest

import agenthub
from agenthub.agents.oracle import OracleAgent
from agenthub.environments.swe import instances as swe_instances
from agenthub.environments.swe.build import toolchain
from agenthub.errors import AgentHubError
from agenthub.rewards import GatedAccumulation
from agenthub.runner import Episode, run_episodes
from agenthub.sandbox.images import docker_client
from agenthub.suites import SPLIT_STRIDE

ENV_ID = "swe/pylibs-v0"
SUITE = swe_instances.load("pylibs")


def _problem(check) -> str | None:
    try:
        check()
        return None
    except AgentHubError as e:
        return str(e)


BWRAP_PROBLEM = _problem(lambda: toolchain("bwrap"))  # bubblewrap plus the host's python3-pytest
DOCKER_PROBLEM = _problem(docker_client)
pytestmark = pytest.mark.skipif(BWRAP_PROBLEM is not None, reason=f"bwrap cannot run the tests: {BWRAP_PROBLEM}")
BACKENDS = ["bwrap", pytest.param("docker", marks=pytest.mark.skipif(
    DOCKER_PROBLEM is not None, reason=f"docker is not usable here: {DOCKER_PROBLEM}"))]


def _test_sample() -> list[int]:
    """Seeds of one test-split instance per library."""
    seeds, seen = [], set()
    for i, inst in enumerate(SUITE.split("test")):
        if inst.library not in seen:
            seen.add(inst.library)
            seeds.append(SPLIT_STRIDE + i)
    return seeds


def _call(name: str, **args) -> dict:
    return {"role": "assistant", "content": "", "tool_calls": [
        {"id": f"c_{name}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}


class SubmitAtOnce:
    name = "submit-at-once"

    def act(self, messages, ctx):
        return _call("submit")


@pytest.mark.parametrize("backend", BACKENDS)
def test_oracle_resolves_every_sampled_test_task_and_submitting_at_once_resolves_none(backend):
    seeds = _test_sample()
    assert len(seeds) == len(SUITE.libraries)
    episodes = [Episode(ENV_ID, seed, env_kwargs={"backend": backend}) for seed in seeds]
    oracle = run_episodes(episodes, OracleAgent(), concurrency=2)
    for t in oracle:
        assert t.error is None, t.error
        assert t.success and t.outcome == 1.0, (t.task_id, t.final_observation)
        last = t.turns[-1]
        assert last.reward_components["f2p_pass_ratio"] == 1.0 and last.reward_components["p2p_pass_ratio"] == 1.0
        assert last.info["backend"] == backend  # the fresh sandbox the verdict came from
        assert any(c["function"]["name"] == "str_replace" or c["function"]["name"] == "create"
                   for turn in t.turns for c in turn.action.get("tool_calls", []))
    lazy = run_episodes(episodes, SubmitAtOnce(), concurrency=2)
    assert [t.success for t in lazy] == [False] * len(seeds)
    assert [t.outcome for t in lazy] == [0.25] * len(seeds)  # the empty-patch level
    # ready for G-RA: immediate tool rewards count only where the task was resolved
    gated = GatedAccumulation(threshold=1.0).score(oracle + lazy)
    for t, rewards in zip(oracle, gated):
        assert rewards[-1] == pytest.approx(1.0 + 0.02) and sum(rewards) == pytest.approx(1.0 + 0.02 * len(t.turns))
    assert [r for r in gated[len(oracle):]] == [[0.25]] * len(seeds)


def test_evaluation_ignores_edited_tests_and_grades_outcome_levels():
    env = agenthub.make(ENV_ID, backend="bwrap")
    try:
        obs, info = env.reset(seed=SPLIT_STRIDE)
        inst = SUITE.get(info["task_id"])
        test_file = inst.FAIL_TO_PASS[0].split("::")[0]
        # make every test "pass" inside the agent's sandbox by gutting the failing test file
        obs, *_ = env.step(_call("create", path=test_file, content="def test_nothing():\n    pass\n"))
        obs, reward, term, trunc, info = env.step(_call("run_tests", tests=[test_file]))
        assert "1 passed" in obs[0]["content"]
        obs, reward, term, trunc, info = env.step(_call("submit"))
        assert term and not info["success"] and info["outcome"] == 0.25 and info["patch"] == ""

        env.reset(seed=SPLIT_STRIDE)  # a patch that changes code but fixes nothing
        env.step(_call("insert", path=inst.file, line=0, text="# looked at this\n"))
        obs, reward, term, trunc, info = env.step(_call("submit"))
        assert term and not info["success"] and info["outcome"] == 0.5
        assert info["f2p_pass_ratio"] == 0.0 and info["p2p_pass_ratio"] == 1.0
        assert "+# looked at this" in info["patch"] and inst.FAIL_TO_PASS[0] in info["failing_tests"]
        assert reward == pytest.approx(0.02)  # immediate only: the outcome travels in info / trajectory.outcome
        assert info["reward_components"]["outcome"] == 0.5 and info["reward_components"]["pass_ratio"] == 0.5
    finally:
        env.close()


def test_tools_report_failures_and_hanging_commands_are_killed():
    env = agenthub.make(ENV_ID, backend="bwrap")
    try:
        env.reset(seed=0)
        inst = SUITE.get(env.task_id)
        obs, reward, *_, info = env.step(_call("view", path=inst.file, start_line=1, end_line=3))
        assert obs[0]["content"].startswith("     1\t") and info["reward_components"]["tool_success"] == 1.0
        assert reward == pytest.approx(0.02)
        start = time.monotonic()
        obs, reward, *_, info = env.step(_call("bash", command="sleep 30", timeout=1))
        assert time.monotonic() - start < 15
        assert "timed out after 1 s and was killed" in obs[0]["content"]
        assert info["reward_components"] == {"tool_format": 1.0, "tool_success": 0.0} and reward == 0.0
        obs, *_ , info = env.step(_call("str_replace", path=inst.file, old_str="no such text 123", new_str="x"))
        assert "does not occur" in obs[0]["content"] and info["reward_components"]["tool_success"] == 0.0
        obs, *_, info = env.step("I think the bug is somewhere.")  # text, no tool call
        assert "No tool was called" in obs[0]["content"] and info["reward_components"]["tool_format"] == 0.0
        two = {"role": "assistant", "content": "", "tool_calls": [
            _call("bash", command="echo hi")["tool_calls"][0] | {"id": "a"},
            _call("view", path="nope.py")["tool_calls"][0] | {"id": "b"}]}
        obs, reward, *_, info = env.step(two)
        assert [m["tool_call_id"] for m in obs] == ["a", "b"] and "hi" in obs[0]["content"]
        assert info["reward_components"]["tool_success"] == 0.5
    finally:
        env.close()


def test_wall_budget_and_max_turns_end_an_episode_without_a_submit():
    env = agenthub.make(ENV_ID, backend="bwrap", wall_budget=1.0)
    try:
        env.reset(seed=0)
        obs, reward, term, trunc, info = env.step(_call("bash", command="sleep 20", timeout=60))
        assert trunc and not term and info["outcome"] == 0.0 and not info["success"]
        assert "killed" in obs[0]["content"]
    finally:
        env.close()
    env = agenthub.make(ENV_ID, backend="bwrap", max_turns=2)
    try:
        env.reset(seed=0)
        results = [env.step(_call("view", path=".")) for _ in range(2)]
        assert [r[3] for r in results] == [False, True] and results[-1][4]["outcome"] == 0.0
    finally:
        env.close()


def test_seeds_pick_splits_and_resets_are_deterministic():
    env = agenthub.make(ENV_ID, backend="bwrap")
    try:
        obs, info = env.reset(seed=0)
        assert info["task_id"] == SUITE.split("train")[0].instance_id
        assert SUITE.split("train")[0].problem_statement in obs[1]["content"]
        again, info2 = env.reset(seed=0)
        assert again == obs and info2["task_id"] == info["task_id"]
        _, info = env.reset(seed=SPLIT_STRIDE + 1)
        assert info["task_id"] == SUITE.split("test")[1].instance_id
        _, info = env.reset(options={"instance_id": SUITE.instances[5].instance_id})
        assert info["task_id"] == SUITE.instances[5].instance_id
        for inst in SUITE.instances:  # the location of the bug is never in what the agent is shown
            assert inst.file not in inst.problem_statement
    finally:
        env.close()


def test_without_docker_the_default_backend_falls_back_to_bwrap(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    env = agenthub.make(ENV_ID)
    try:
        with pytest.warns(UserWarning, match="docker is not usable"):
            obs, info = env.reset(seed=0)
        assert info["backend"] == "bwrap" and "docker is not usable" in info["sandbox_warning"]
        obs, *_ = env.step(_call("bash", command="python3 -c 'import pytest; print(pytest.__version__)'"))
        assert "[exit code 0]" in obs[0]["content"]
    finally:
        env.close()
