"""Leak checks per family (issue 14, "Leak checks"): after make/reset/step/close cycles
no process, open file descriptor, thread, temporary file or directory is left.

This runs `bench/envs.py --leaks` (`leak_check`) at test size: the full 200 cycles for
TextWorld; fewer where a cycle takes seconds (ALFWorld parses its PDDL problem, a web
env starts a Chromium), stated per test; the bench runs 200 of each. Real engines, a
real Chromium and real bwrap sandboxes; a family skips only where it cannot run."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

import agenthub
from agenthub.env import Env

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_envs", BENCH / "envs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_clean(report: dict, rss_mb: float) -> None:
    assert report["processes_left"] == 0 and report["fds_left"] == 0 and report["threads_left"] == 0, report
    assert report["tmp_entries_left"] == [] and report["dirs_left"] == [], report
    assert report["mapped_files_left"] == 0, report
    assert report["rss_growth_mb"] < rss_mb, report


def test_textworld_200_cycles(bench):
    pytest.importorskip("textworld")
    assert_clean(bench.leak_check("textworld", 200), rss_mb=20)


def test_alfworld_cycles(bench):
    """3 cycles here (about 3 s each on 2 busy cores). Every ALFWorld engine loads its own
    copy of fast-downward's library; until closed engines gave theirs back for reuse
    (`planner_reuse`), each cycle left one more mapped (about 4 MB)."""
    pytest.importorskip("alfworld")
    assert_clean(bench.leak_check("alfworld", 3), rss_mb=40)


def test_web_cycles_with_chromium(bench):
    """3 cycles here (a Chromium start each, about 1-3 s)."""
    try:
        from agenthub.environments.web.browser import browser_binaries
        browser_binaries()
    except (agenthub.AgentHubError, ImportError) as e:
        pytest.skip(f"web envs cannot run here: {e}")
    assert_clean(bench.leak_check("web", 3), rss_mb=40)


def test_tools_cycles_with_a_bwrap_sandbox(bench):
    """20 cycles of each tool env; the compute env runs its Python step in a bwrap sandbox."""
    try:
        agenthub.sandbox.check("bwrap")
    except agenthub.sandbox.SandboxError as e:
        pytest.skip(f"no bwrap sandbox here: {e}")
    assert_clean(bench.leak_check("tools", 20), rss_mb=20)


class LeakyEnv(Env):
    """Leaves a process, one that has left the process tree, a file descriptor, a
    temporary file and a directory behind on every cycle: the check must see each."""

    left: list = []  # what to clean up afterwards

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        child = subprocess.Popen(["sleep", "30"])
        orphan = subprocess.run(["sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
        held = open(os.devnull)
        _, path = tempfile.mkstemp()
        shm = tempfile.mkdtemp(dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
        LeakyEnv.left += [child.pid, int(orphan.stdout), held, path, shm]
        return [{"role": "user", "content": "leak"}], {}

    def step(self, action):
        return [{"role": "user", "content": "ok"}], 0.0, True, False, {"success": True}

    def oracle_actions(self):
        return ["done"]


def test_the_check_sees_each_kind_of_leak(bench, monkeypatch):
    agenthub.register("testleaks/leaky-v0", f"{__name__}:LeakyEnv", max_turns=2)
    monkeypatch.setitem(bench.LEAK_TARGETS, "leaky", [("testleaks/leaky-v0", {}, 1)])
    report = {"tmp_dir": ""}
    try:
        report = bench.leak_check("leaky", 3, settle_s=0.5)
        assert report["processes_left"] == 6 and report["fds_left"] >= 3
        assert len(report["tmp_entries_left"]) == 3 and len(report["dirs_left"]) == 3
    finally:
        for item in LeakyEnv.left:
            if isinstance(item, int):
                try:
                    os.kill(item, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            elif isinstance(item, str):
                shutil.rmtree(item, ignore_errors=True) if os.path.isdir(item) else os.unlink(item)
            else:
                item.close()
        shutil.rmtree(report["tmp_dir"], ignore_errors=True)
