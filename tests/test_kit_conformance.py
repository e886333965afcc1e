"""`agenthub check` (issue 17, item 3): the conformance suite passes the bundled families
and catches each kind of contract breach — one broken env per check, each breaking it
in its own way, and the checks around it still run."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import threading
import time

import pytest

import agenthub
from agenthub.cli import main
from agenthub.plugin_kit import run_checks
from agenthub.plugin_kit.hostile import hostile_actions
from agenthub.types import tool_calls_message

from conftest import run_cli


class GoodEnv(agenthub.Env):
    """Say "go" three times. The base the broken envs below each break in one way."""

    def __init__(self, **kwargs):
        self.n = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.n = 0
        return [{"role": "user", "content": f"say go (task {seed})"}], {}

    def step(self, action):
        self.n += action.text.strip() == "go"
        won = self.n >= 3
        info = {"success": True, "outcome": 1.0} if won else {}
        return [{"role": "user", "content": f"{self.n} of 3"}], float(won), won, False, info

    def oracle_actions(self):
        return ["go"] * 3


class Unseeded(GoodEnv):
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return [{"role": "user", "content": f"say go ({time.perf_counter_ns()})"}], {}


class ObservationNotMessages(GoodEnv):
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return "say go", {}


class RaisesOnControlTokens(GoodEnv):
    def step(self, action):
        if "<|" in action.text:
            raise ValueError("unexpected token")
        return super().step(action)


class NanReward(GoodEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, (reward if action.text == "go" else float("nan")), terminated, truncated, info


class ComponentNotANumber(GoodEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated, truncated, {**info, "reward_components": {"said": action.text[:5]}}


class ResetCorruptedByBadInput(GoodEnv):
    """Keeps a counter across resets that junk input advances."""

    junk = 0

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed)
        return [{"role": "user", "content": f"say go ({self.junk})"}], info

    def step(self, action):
        self.junk += action.text.strip() != "go"
        return super().step(action)


class OracleLoses(GoodEnv):
    def oracle_actions(self):
        return ["stop"] * 3


class NoOracle(GoodEnv):
    def oracle_actions(self):
        raise NotImplementedError


class InfoNotJson(GoodEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated, truncated, {**info, "seen": {action.text[:3]}}  # a set


class AnswersAnotherCallId(GoodEnv):
    """Has a tool, and answers its calls under an id the agent never used."""

    tools = [agenthub.tool_spec("say", "Say a word.", {"word": {"type": "string"}})]

    def step(self, action):
        if not action.calls:
            return super().step(action)
        obs, *rest = super().step(str(action.calls[0].arguments.get("word")))
        return [{"role": "tool", "tool_call_id": "not-" + action.calls[0].id, "content": obs[0]["content"]}], *rest

    def oracle_actions(self):
        return [tool_calls_message([("say", {"word": "go"})], id_prefix=f"c{i}") for i in range(3)]


class LeaksAProcess(GoodEnv):
    started: list = []

    def reset(self, *, seed=None, options=None):
        self.started.append(subprocess.Popen(["sleep", "30"]))
        return super().reset(seed=seed)


class LeaksAThread(GoodEnv):
    stop = threading.Event()

    def reset(self, *, seed=None, options=None):
        threading.Thread(target=self.stop.wait, daemon=True).start()
        return super().reset(seed=seed)


class LeaksAFile(GoodEnv):
    held: list = []

    def reset(self, *, seed=None, options=None):
        self.held.append(open(os.devnull))
        return super().reset(seed=seed)


class CloseTwiceRaises(GoodEnv):
    def __init__(self, **kwargs):
        super().__init__()
        self.closed = False

    def close(self):
        if self.closed:
            raise RuntimeError("already closed")
        self.closed = True


BROKEN = {  # env class -> the checks it must fail (every other check must pass or skip)
    Unseeded: {"deterministic reset", "hostile actions"},  # hostile: reset afterwards differs too
    ObservationNotMessages: {"check_env", "check_env (unwrapped)", "deterministic reset", "valid transcripts"},
    RaisesOnControlTokens: {"hostile actions", "trajectory round trip", "valid transcripts"},
    NanReward: {"check_env", "check_env (unwrapped)", "hostile actions"},  # NaN != NaN to gymnasium too
    ComponentNotANumber: {"hostile actions"},
    ResetCorruptedByBadInput: {"hostile actions"},
    OracleLoses: {"oracle wins"},
    InfoNotJson: {"trajectory round trip"},
    AnswersAnotherCallId: {"valid transcripts"},
    LeaksAProcess: {"close"},
    LeaksAThread: {"close"},
    LeaksAFile: {"close"},
    CloseTwiceRaises: {"close"},
}


def _register(cls) -> str:
    env_id = f"kittest/{cls.__name__.lower()}-v0"
    agenthub.register(env_id, f"{__name__}:{cls.__name__}", max_turns=40)
    return env_id


def _statuses(results) -> dict[str, str]:
    return {r.name: r.status for r in results}


def test_a_conforming_env_passes_every_check():
    results = run_checks(_register(GoodEnv))
    _assert_all_pass(results)
    assert [r.name for r in results] == [
        "make", "check_env", "check_env (unwrapped)", "deterministic reset", "hostile actions", "oracle wins",
        "trajectory round trip", "valid transcripts", "close"]


@pytest.mark.parametrize("cls", list(BROKEN), ids=lambda c: c.__name__)
def test_each_kind_of_breach_fails_its_check(cls):
    try:
        results = run_checks(_register(cls), cycles=2)
    finally:
        for proc in getattr(cls, "started", []):
            proc.kill()
            proc.wait()
        for f in getattr(cls, "held", []):
            f.close()
        if cls is LeaksAThread:
            cls.stop.set()
    failed = {r.name for r in results if r.status == "fail"}
    assert failed == BROKEN[cls], {r.name: (r.status, r.detail) for r in results}
    assert all(r.detail for r in results if r.status == "fail")  # each failure says what went wrong


def test_a_failure_names_the_hostile_action_and_where_it_raised():
    results = {r.name: r for r in run_checks(_register(RaisesOnControlTokens))}
    detail = results["hostile actions"].detail
    assert "'chat control tokens'" in detail and "ValueError: unexpected token" in detail
    assert "test_kit_conformance.py" in detail


def test_no_oracle_is_a_skip_not_a_failure():
    statuses = _statuses(run_checks(_register(NoOracle)))
    assert statuses["oracle wins"] == "skip"
    assert statuses["trajectory round trip"] == "pass"  # still checked, on the hostile episode
    assert set(statuses.values()) == {"pass", "skip"}


def test_an_env_that_cannot_be_made_fails_make_and_skips_the_rest():
    agenthub.register("kittest/unmakeable-v0", f"{__name__}:NoSuchClass")
    results = run_checks("kittest/unmakeable-v0")
    assert results[0].status == "fail" and "NoSuchClass" in results[0].detail
    assert {r.status for r in results[1:]} == {"skip"}


def test_hostile_sample_covers_the_contract_kinds():
    labels = [label for label, _ in hostile_actions(agenthub.make("tools/guess-number-v0").tools)]
    for kind in ("None content", "content parts", "unknown tool", "arguments NaN", "arguments 1e400",
                 "lone surrogates", "chat control tokens", "None", "deep nesting"):
        assert kind in labels


def test_cli_prints_a_table_and_exits_non_zero_on_failure(capsys):
    assert main(["check", _register(GoodEnv)]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "all checks passed" in out and "FAIL" not in out

    assert main(["check", _register(OracleLoses), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False
    assert {c["name"]: c["status"] for c in report["checks"]}["oracle wins"] == "fail"


def test_cli_unknown_env_is_one_line(capsys):
    assert main(["check", "kittest/no-such-env-v0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agenthub: error: unknown env id") and len(err.strip().splitlines()) == 1


def _assert_all_pass(results) -> None:
    assert all(r.status == "pass" for r in results), [r for r in results if r.status != "pass"]


@pytest.mark.parametrize("env_id", ["tools/guess-number-v0", "tools/compute-v0", "tools/search-qa-v0",
                                    "textworld/w2-o3-q4-v0"])
def test_bundled_families_pass(env_id):
    if env_id.startswith("textworld/"):
        pytest.importorskip("textworld")
    _assert_all_pass(run_checks(env_id))


def _heavy_family_problem(env_id: str) -> str | None:
    """Why this family's components cannot run here, or None."""
    family = env_id.split("/")[0]
    if family == "alfworld":
        if importlib.util.find_spec("alfworld") is None:
            return "alfworld is not installed"
    if family == "web":
        try:
            from agenthub.environments.web.browser import browser_binaries
            browser_binaries()
        except (agenthub.AgentHubError, ImportError) as e:
            return f"no browser for the web envs: {e}"
    if family == "swe":
        from conftest import docker_problem
        return docker_problem()
    return None


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["web/click-test-v0", "swe/pylibs-v0", "alfworld/pick-and-place-v0"])
def test_heavy_families_pass(env_id):
    """One seed, one leak cycle: measured on this 2-core machine 43 s (web, a Chromium
    per env), 61 s (swe, docker sandboxes) and 53 s (alfworld, PDDL parsed per reset)."""
    problem = _heavy_family_problem(env_id)
    if problem:
        pytest.skip(problem)
    # through the CLI, in its own process: a native crash in an engine fails this test, not the session
    out = run_cli("check", env_id, "--seeds", "0", "--cycles", "1", "--json", env={"PYTHONFAULTHANDLER": "1"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert {c["status"] for c in json.loads(out.stdout)["checks"]} == {"pass"}


def test_the_leak_check_sees_a_sandbox_container_left_open(docker_image):
    """A container is no child process: the footprint counts the sandboxes' own
    containers (owner label) too, so an env that never closes its sandbox fails."""
    from agenthub import sandbox
    from agenthub.plugin_kit.footprint import footprint, settled_footprint

    before = footprint()
    box = sandbox.open("docker", image=docker_image)
    try:
        assert footprint().left_since(before)["sandbox resources"] >= 1
    finally:
        box.close()
    assert not any(settled_footprint(before).left_since(before).values())
