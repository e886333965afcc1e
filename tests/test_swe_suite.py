"""The shipped SWE suite and the generator that made it, against the real libraries."""

import json
from pathlib import Path

import pytest

import agenthub
from agenthub.environments.swe import instances as swe_instances
from agenthub.environments.swe.build import toolchain
from agenthub.errors import AgentHubError
from agenthub.environments.swe import mutations, patches
from agenthub.environments.swe.libraries import is_test_file, library, snapshot

SUITE = swe_instances.load("pylibs")


def test_shipped_suite_is_big_varied_and_small_on_disk():
    assert len(SUITE.instances) >= 60
    assert len(SUITE.libraries) >= 3
    assert {i.library for i in SUITE.instances} == set(SUITE.libraries)
    assert len({i.kind for i in SUITE.instances}) >= 5
    assert SUITE.split("train") and SUITE.split("test")
    assert len({i.instance_id for i in SUITE.instances}) == len(SUITE.instances)
    path = swe_instances.SUITES_DIR / "pylibs" / "instances.json"
    assert path.stat().st_size < 2_000_000
    readme = (path.parent / "README.md").read_text()
    for name in SUITE.libraries:
        assert f"| {name} |" in readme
    for kind in mutations.KINDS:
        assert f"| {kind} |" in readme
    suite = agenthub.load_suite("swe/pylibs", split="test")
    assert len(suite) == len(SUITE.split("test")) and suite[0].env_id == "swe/pylibs-v0"


def test_every_instance_is_consistent_with_its_snapshot():
    """Bug and gold patches apply to the pinned sdist and undo each other; the tests are
    split into disjoint FAIL_TO_PASS / PASS_TO_PASS; the statement never names the file."""
    for inst in SUITE.instances:
        lib = library(inst.library)
        assert inst.snapshot_id == lib.snapshot_id == SUITE.libraries[inst.library].snapshot_id
        root = snapshot(lib)
        original = {inst.file: (root / inst.file).read_text()}
        buggy = patches.apply(original, inst.bug_patch)
        assert patches.changed_paths(inst.bug_patch) == [inst.file] and not is_test_file(inst.file)
        assert patches.apply(buggy, inst.gold_patch) == original
        assert inst.FAIL_TO_PASS and inst.PASS_TO_PASS
        assert not set(inst.FAIL_TO_PASS) & set(inst.PASS_TO_PASS)
        assert inst.file not in inst.problem_statement and f"line {inst.line}" not in inst.problem_statement
        assert inst.FAIL_TO_PASS[0] in inst.problem_statement


def _bwrap_problem() -> str | None:
    try:
        toolchain("bwrap")  # bubblewrap plus the host's python3-pytest
        return None
    except AgentHubError as e:
        return str(e)


BWRAP_PROBLEM = _bwrap_problem()


@pytest.mark.skipif(BWRAP_PROBLEM is not None, reason=f"bwrap cannot run the tests: {BWRAP_PROBLEM}")
def test_build_suite_command_reproduces_the_shipped_suite(cli, tmp_path):
    """Same seed, same bugs: a small build finds the shipped suite's first instances."""
    r = cli("swe", "build-suite", "--out", str(tmp_path), "--libraries", "inflection", "--per-library", "2",
            "--seed", str(SUITE.seed))
    assert r.returncode == 0, r.stderr
    built = json.loads((tmp_path / "instances.json").read_text())
    shipped = [i for i in SUITE.instances if i.library == "inflection"][:2]
    assert [i["instance_id"] for i in built["instances"]] == [i.instance_id for i in shipped]
    assert [i["FAIL_TO_PASS"] for i in built["instances"]] == [i.FAIL_TO_PASS for i in shipped]
    assert [i["bug_patch"] for i in built["instances"]] == [i.bug_patch for i in shipped]
    assert "| inflection |" in (tmp_path / "README.md").read_text()


def test_user_mistakes_are_one_line_errors(cli, tmp_path):
    r = cli("swe", "build-suite", "--out", str(tmp_path), "--libraries", "nosuchlib")
    assert r.returncode == 2 and "unknown SWE library 'nosuchlib'" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli("swe", "show", "nope", "--suite", str(tmp_path / "missing"))
    assert r.returncode == 2 and "no SWE suite" in r.stderr
    inst = SUITE.instances[0]
    r = cli("swe", "show", inst.instance_id)
    assert r.returncode == 0 and json.loads(r.stdout)["PASS_TO_PASS"] == inst.PASS_TO_PASS


def test_snapshots_are_pinned_by_hash():
    for name in SUITE.libraries:
        lib = library(name)
        root = snapshot(lib)
        assert root.name == lib.snapshot_id and (root / lib.source).is_dir()
        assert lib.snapshot_id.endswith(lib.sha256[:12])
    assert Path(snapshot(library("inflection")), "test_inflection.py").is_file()
