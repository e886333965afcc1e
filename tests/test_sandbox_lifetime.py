"""Issue 14.7: nothing an exec starts outlives it, on every backend, with or without a
cgroup (the branch a caller that is not root takes), and for a really unprivileged user:
an exec returns within its timeout plus one second, and the processes it started,
however they detached (setsid, double fork, ignoring SIGTERM), are dead when it returns."""

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from agenthub.sandbox import cgroups
from agenthub.sandbox.process import SUBREAPER
from agenthub.sandbox.leaks import processes_with

BACKENDS = ["local", "bwrap", "docker"]


def escapes(marker: str) -> dict[str, str]:
    """Commands that try to leave something running behind (sleep 3MARKER)."""
    return {
        "setsid, then a foreground wait": f"setsid sleep 3{marker} & sleep 6{marker}",
        "setsid with its output closed": f"setsid sleep 3{marker} >/dev/null 2>&1 </dev/null & echo started",
        "ignores SIGTERM and SIGHUP": f"nohup sh -c 'trap \"\" TERM HUP; sleep 3{marker}' >/dev/null 2>&1 & "
                                      f"echo started",
        "double fork daemon": (f"python3 -c \"import os\nif os.fork() == 0:\n os.setsid()\n if os.fork() == 0:\n"
                               f"  os.execvp('sleep', ['sleep', '3{marker}'])\" ; echo started"),
    }


@pytest.fixture(params=["cgroup", "no-cgroup"])
def cgroup_mode(request, monkeypatch):
    """no-cgroup: the branch taken where no cgroup can be made (callers that are not root)."""
    if request.param == "no-cgroup":
        monkeypatch.setattr(cgroups.Cgroup, "create", classmethod(lambda cls, *args: None))
    elif os.geteuid() != 0 or cgroups.Cgroup.create(1 << 30, 1, 64) is None:
        pytest.skip("no cgroup can be made here (not root, or no writable cgroup filesystem)")
    return request.param


@pytest.mark.parametrize("backend", BACKENDS)
def test_nothing_outlives_an_exec(open_box, backend, cgroup_mode):
    if backend == "docker" and cgroup_mode == "no-cgroup":
        pytest.skip("docker execs run in the container's own namespaces, not in host cgroups")
    box = open_box(backend)
    marker = f"{uuid.uuid4().int % 10**6}{os.getpid()}"
    start = time.monotonic()
    r = box.exec(f"setsid sleep 30{marker} & sleep 6{marker}", timeout=2)  # the example
    took = time.monotonic() - start
    assert r.timed_out and took <= 3.0 and r.duration <= 3.0, (took, r)
    assert processes_with(marker) == []
    for what, command in escapes(marker).items():
        start = time.monotonic()
        r = box.exec(command, timeout=3)
        assert time.monotonic() - start <= 4.0, (what, r)
        assert processes_with(marker) == [], what
    assert box.exec("echo alive", timeout=10).stdout == "alive\n"


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_subreaper_reaps_for_an_unprivileged_user():
    """The local backend's no-cgroup containment, run by a real unprivileged user (nobody):
    on normal exit and on the caller's SIGTERM (its timeout), detached processes die."""
    python = shutil.which("python3", path="/usr/bin:/bin")  # nobody cannot enter /root, where the venv's is
    if python is None:
        pytest.skip("no system python3 for the unprivileged user")
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    marker = f"{uuid.uuid4().int % 10**6}{os.getpid()}"

    def run(command: str) -> subprocess.Popen:
        return subprocess.Popen([*prefix, python, "-I", "-S", SUBREAPER, "--", "sh", "-c", command],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, cwd="/")

    done = run(f"setsid sleep 30{marker} >/dev/null 2>&1 </dev/null & echo started")
    out, err = done.communicate(timeout=10)
    assert done.returncode == 0 and out == b"started\n", err
    assert processes_with(marker) == []

    held = run(f"setsid sleep 30{marker} & sleep 6{marker}")
    deadline = time.monotonic() + 10
    def sleeps() -> list[int]:
        return [p for p in processes_with(marker) if Path(f"/proc/{p}/cmdline").read_bytes().startswith(b"sleep")]

    while len(sleeps()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = sleeps()
    assert len(pids) == 2 and all(os.stat(f"/proc/{p}").st_uid == (65534 if prefix else os.geteuid()) for p in pids)
    start = time.monotonic()
    held.terminate()
    held.communicate(timeout=5)  # returns once both sleeps are dead: they held its pipes
    assert time.monotonic() - start < 1.0
    assert processes_with(marker) == []
