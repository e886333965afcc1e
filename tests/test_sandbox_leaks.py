"""Issue 14, leak checks: many open/exec/file/close cycles per backend leave no
processes, containers, volumes, cgroups, temp dirs or open file descriptors behind.

Cycles: 100 for local and bwrap (each cycle starts and ends a sandbox's exec server, a
bwrap instance and a python3: 0.1-0.4 s here), 8 for docker (a cycle costs 1-3 s here:
container start and removal),
30 for local and bwrap on the branch without cgroups (their execs run under subreaper.py);
AGENTHUB_LEAK_CYCLES=N sets every case to N (`bench/sandbox.py --leaks` prints the
figures for 200 each)."""

import os
import uuid

import pytest

from agenthub.sandbox import cgroups, leaks

CYCLES = {"local": 100, "bwrap": 100, "docker": 8}


@pytest.mark.parametrize("backend", ["local", "bwrap", "docker"])
def test_open_exec_close_cycles_leave_nothing(request, backend):
    options = {"image": request.getfixturevalue("docker_image")} if backend == "docker" else {}
    cycles = int(os.environ.get("AGENTHUB_LEAK_CYCLES", CYCLES[backend]))
    marker = f"{uuid.uuid4().int % 10**6}{os.getpid()}"
    report = leaks.cycle(backend, cycles, marker, **options)
    assert report.left_over() == {}, report
    assert report.execs_failed == 0, report


@pytest.mark.parametrize("backend", ["local", "bwrap"])
def test_cycles_without_cgroups_leave_nothing(backend, monkeypatch):
    """The branch a caller that is not root takes: no cgroup, a subreaper per exec."""
    monkeypatch.setattr(cgroups.Cgroup, "create", classmethod(lambda cls, *args: None))
    marker = f"{uuid.uuid4().int % 10**6}{os.getpid()}"
    report = leaks.cycle(backend, int(os.environ.get("AGENTHUB_LEAK_CYCLES", 30)), marker)
    assert report.left_over() == {}, report
    assert report.execs_failed == 0, report
