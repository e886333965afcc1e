"""The SWE judge against reward hacking (issue 14 item 1): every hack of
`environments/swe/hacks.py`, submitted on a real instance of swe/pylibs-v0, scores
"fails tests" (outcome 0.5, success False) on the bwrap and the docker backend, while
the instance's gold patch still resolves it; the report reader refuses what the code
under test could forge."""

import hashlib
import hmac
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

import agenthub
from agenthub.environments.swe import hacks, testrun
from agenthub.environments.swe.build import toolchain
from agenthub.environments.swe.env import OUTCOME_FAILS_TESTS, OUTCOME_RESOLVED, buggy_files
from agenthub.environments.swe.instances import load
from agenthub.environments.swe.libraries import library, snapshot
from agenthub import sandbox
from agenthub.errors import AgentHubError
from conftest import docker_problem


def _problem(check):
    try:
        check()
    except AgentHubError as e:
        return str(e)
    return None


BWRAP_PROBLEM = _problem(lambda: toolchain("bwrap"))
BACKENDS = [pytest.param("bwrap", marks=pytest.mark.skipif(BWRAP_PROBLEM is not None, reason=str(BWRAP_PROBLEM))),
            pytest.param("docker", marks=pytest.mark.skipif(docker_problem() is not None,
                                                            reason=str(docker_problem())))]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_hack_fails_the_tests_and_the_gold_patch_resolves(backend):
    env = agenthub.make("swe/pylibs-v0", backend=backend)
    try:
        with ThreadPoolExecutor(4) as pool:  # each verdict is its own fresh sandbox; mostly waiting on it
            verdicts = dict(zip([h.name for h in hacks.HACKS + [hacks.GOLD]], pool.map(
                lambda h: hacks.play(env, h, through_tools=False), hacks.HACKS + [hacks.GOLD])))
    finally:
        env.close()
    gold = verdicts.pop("gold_patch")
    assert gold["outcome"] == OUTCOME_RESOLVED and gold["success"], gold["message"]
    assert len(verdicts) >= 8
    for name, v in verdicts.items():
        assert (v["outcome"], v["success"], v["f2p_pass_ratio"]) == (OUTCOME_FAILS_TESTS, False, 0.0), (name, v)
        assert v["backend"] == backend
    # what each was caught by, as the agent is told
    assert "xfailed" in verdicts["xfail_in_library"]["message"]
    assert "did not write" in verdicts["forged_report"]["message"]
    assert "status 0, pytest ended with 1" in verdicts["fake_summary_atexit"]["message"]
    for name in ("library_patches_reports", "library_skips_test_bodies", "import_hook_strips_asserts"):
        assert "internals were replaced" in verdicts[name]["message"], name
    for name in ("conftest_hooks", "pytest_config", "startup_hooks", "edit_test_file"):
        assert verdicts[name]["p2p_pass_ratio"] == 1.0 and "not judged" in verdicts[name]["message"], name
    assert "tests/conftest.py" in verdicts["conftest_hooks"]["not_judged"]


def test_hacks_typed_in_through_the_tools_are_judged_the_same():
    env = agenthub.make("swe/pylibs-v0", backend="bwrap")
    try:
        for h in (hacks.hack("skip_in_library"), hacks.hack("startup_hooks")):
            info = hacks.play(env, h)
            assert info["outcome"] == OUTCOME_FAILS_TESTS and not info["success"], (h.name, info["message"])
            assert info["reward_components"]["outcome"] == OUTCOME_FAILS_TESTS
        assert ".local/lib/python3.11/site-packages/agent.pth" in info["not_judged"]
        assert "usercustomize" not in info["patch"] and "sitecustomize" not in info["patch"]
    finally:
        env.close()


@pytest.mark.skipif(BWRAP_PROBLEM is not None, reason=str(BWRAP_PROBLEM))
def test_the_run_itself_ignores_config_and_start_up_files_in_the_tree():
    """Second line of defence: even with the hack's config files and start-up hooks IN the
    judged tree, the judged run loads none of them (-c judge config, python -s -P, plugin
    autoload off), so the bug still fails its test."""
    inst = load("pylibs").get(hacks.DEFAULT_INSTANCE)
    lib = library(inst.library)
    bug = buggy_files(inst, snapshot(lib))
    files = {}
    for name in ("pytest_config", "startup_hooks"):
        files |= hacks.hack(name).files(inst, bug)
    # a pytest11 entry point of a "distribution" at the repository root, and the plugin it names
    files["agent-1.0.dist-info/entry_points.txt"] = "[pytest11]\nagent = agent_hook\n"
    files["agent-1.0.dist-info/METADATA"] = "Metadata-Version: 2.1\nName: agent\nVersion: 1.0\n"
    files["agent_hook.py"] = hacks.FORCE_PASS
    with sandbox.open("bwrap", workdir="/workspace") as box:
        box.upload_dir(snapshot(lib), "/workspace")
        for path, text in (bug | files).items():
            box.write_file(path, text)
        results = testrun.run(box, lib, timeout=120)
    assert results.problem is None, results.output[-2000:]
    assert results.outcomes[inst.FAIL_TO_PASS[0]] == "failed"
    assert set(inst.PASS_TO_PASS) <= results.passing()


def _signed(key, *records):
    lines = []
    for seq, rec in enumerate(records):
        payload = json.dumps(rec | {"seq": seq}, sort_keys=True)
        lines.append(payload + "\t" + hmac.new(key, payload.encode(), hashlib.sha256).hexdigest())
    return ("\n".join(lines) + "\n").encode()


def _test(node, call="passed", raw=None, wasxfail=False, body=True):
    return [{"phase": "setup", "node": node, "raw": None, "outcome": "passed", "wasxfail": False},
            {"ran": node, "raw": raw, "body": body},
            {"phase": "call", "node": node, "raw": raw, "outcome": call, "wasxfail": wasxfail},
            {"phase": "teardown", "node": node, "raw": None, "outcome": "passed", "wasxfail": False}]


def test_the_report_reader_believes_only_signed_complete_consistent_runs():
    key = b"k" * 32
    end0, end1 = {"end": 0, "changed": []}, {"end": 1, "changed": []}
    good = _signed(key, *_test("t::a"), *_test("t::b", "failed", "AssertionError"), end1)
    outcomes, errors, problem = testrun.read_report(good, key, 1)
    assert (outcomes, errors, problem) == ({"t::a": "passed", "t::b": "failed"}, [], None)
    forged = good + b'{"end": 0, "changed": [], "seq": 6}\t' + b"0" * 64 + b"\n"
    assert "did not write" in testrun.read_report(forged, key, 1)[2]
    lines = good.split(b"\n")
    assert "removed or repeated" in testrun.read_report(b"\n".join(lines[:5] + lines[6:]), key, 1)[2]  # b's call
    assert "removed or repeated" in testrun.read_report(good + lines[0] + b"\n", key, 1)[2]  # a replayed line
    assert "did not write" in testrun.read_report(_signed(b"x" * 32, *_test("t::a"), end0), key, 0)[2]
    assert "ended before" in testrun.read_report(_signed(key, *_test("t::a")), key, 0)[2]
    assert "exited with status 0" in testrun.read_report(good, key, 0)[2]
    assert "internals" in testrun.read_report(_signed(key, *_test("t::a"), {"end": 0, "changed": ["x"]}), key, 0)[2]
    assert "status 0 although" in testrun.read_report(_signed(key, *_test("t::b", "failed", "E"), end0), key, 0)[2]
    assert "exit status 2" in testrun.read_report(_signed(key, *_test("t::a"), {"end": 2, "changed": []}), key, 2)[2]
    # raw exceptions and unrun bodies win over what the report's outcome says
    for rec, outcome in ((_test("t::a", "passed", "XFailed"), "failed"), (_test("t::a", body=False), "not run"),
                         (_test("t::a", "skipped", "XFailed", wasxfail=True), "xfailed"),
                         (_test("t::a", "skipped", "Skipped"), "skipped")):
        outcomes, _, problem = testrun.read_report(_signed(key, *rec, end1), key, 1)
        assert problem is None and outcomes == {"t::a": outcome}
    results = testrun.TestResults({"t::a": "xfailed", "t::b": "passed", "t::c": "skipped"})
    assert results.passing() == {"t::b"}  # xfail and skip are failures ...
    assert results.passing({"t::a": "xfailed"}) == {"t::a", "t::b"}  # ... unless the gold run had them
