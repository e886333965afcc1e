"""Issue 19.3: the bwrap and local backends run commands through one exec server per
sandbox (sandbox/exec_server.py). It must keep every guarantee a fresh process per exec
gave: a timeout kills the whole tree, a command that breaks the server (kills or stops it)
gets one clear error within its timeout and leaves nothing running, a command cannot reach
the server's control socket or its memory, the sandbox starts a fresh server afterwards,
and a server that cannot start is a SandboxError, not a hang."""

import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agenthub import sandbox
from agenthub.sandbox import SandboxError, cgroups
from agenthub.sandbox.exec_client import SERVER_DIED
from agenthub.sandbox.leaks import processes_with

BACKENDS = ["local", "bwrap"]
EXAMPLES = int(os.environ.get("AGENTHUB_HYPOTHESIS_EXAMPLES", 25))


def marker() -> str:
    return f"{uuid.uuid4().int % 10**6}{os.getpid()}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_server_serves_every_exec(open_box, backend):
    box = open_box(backend)
    r = box.exec("echo $PPID > ppid; echo kept > /tmp/t", timeout=30)
    assert r.ok, r
    r = box.exec("echo $PPID; cat /tmp/t", timeout=30)  # the same server, the same /tmp
    assert r.stdout == box.read_file("ppid") + "kept\n", r


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_execs_each_get_their_own_timeout_and_cleanup(open_box, backend):
    """One command runs in the server, the other in a keeper: the timed-out one dies with
    all it started while the other finishes untouched."""
    box = open_box(backend)
    tag = marker()
    results = {}

    def slow() -> None:
        results["slow"] = box.exec("sleep 1.5; echo slow-done", timeout=30)

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.3)
    start = time.monotonic()
    hung = box.exec(f"setsid sleep 30{tag} & sleep 31{tag}", timeout=1)
    assert hung.timed_out and time.monotonic() - start < 3.0, hung
    assert processes_with(tag) == []
    thread.join(timeout=30)
    assert results["slow"].ok and results["slow"].stdout == "slow-done\n", results["slow"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("attack,cgroup", [("kill -KILL $PPID", True), ("kill -STOP $PPID", True),
                                           ("kill -STOP $PPID", False)])
def test_a_command_that_breaks_the_server_gets_one_clear_error(open_box, backend, attack, cgroup, monkeypatch):
    if not cgroup:  # the branch a caller that is not root takes: the server runs under subreaper.py
        monkeypatch.setattr(cgroups.Cgroup, "create", classmethod(lambda cls, *args: None))
    box = open_box(backend)
    tag = marker()
    box.write_file("keep.txt", "still here")
    start = time.monotonic()
    r = box.exec(f"setsid sleep 30{tag} >/dev/null 2>&1 & {attack}; sleep 32{tag}", timeout=2)
    took = time.monotonic() - start
    assert took < 4.0, (took, r)  # a stopped server is given up on REAP_GRACE after the timeout
    assert r.exit_code != 0 and SERVER_DIED in r.stderr, r
    assert processes_with(tag) == []  # nothing it started outlives it
    again = box.exec("cat keep.txt", timeout=30)  # a fresh server, the same work dir
    assert again.ok and again.stdout == "still here", again


@pytest.mark.parametrize("backend", BACKENDS)
def test_commands_cannot_reach_the_server(open_box, backend):
    box = open_box(backend)
    fds = box.exec(["python3", "-c", "import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))"],
                   timeout=30)
    assert fds.stdout.strip() in ("[0, 1, 2]", "[0, 1, 2, 3]"), fds  # 3: the listing's own dir fd
    if backend == "bwrap":  # not dumpable: its memory and environment are closed to the sandbox user
        for path in ("/proc/$PPID/mem", "/proc/$PPID/environ"):
            r = box.exec(f"head -c 1 {path}", timeout=30)
            assert r.exit_code != 0, (path, r)


def test_a_server_that_cannot_start_is_a_sandbox_error():
    root = Path(tempfile.mkdtemp(dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None))
    root.chmod(0o755)  # the sandbox user must reach it
    for mount_point in ("usr/bin", "dev", "proc", "tmp", "run", "workspace"):  # a root filesystem without python3
        (root / mount_point).mkdir(parents=True)
    box = sandbox.open("bwrap", image=str(root))
    try:
        with pytest.raises(SandboxError, match="exec server did not start: exit code 1.*python3"):
            box.exec("true", timeout=10)
    finally:
        box.close()
        shutil.rmtree(root)


@pytest.mark.parametrize("backend", BACKENDS)
def test_warm_starts_the_server_before_the_first_exec(backend):
    box = sandbox.open(backend).warm()
    try:
        start = time.monotonic()
        assert box.exec("echo hi", timeout=30).stdout == "hi\n"
        assert time.monotonic() - start < 2.0
    finally:
        box.close()
    with pytest.raises(SandboxError, match="closed"):
        box.warm()


text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=20)


@pytest.fixture(scope="module")
def local_box():
    with sandbox.open("local") as box:
        yield box


@settings(derandomize=True, max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=st.lists(text, max_size=5), value=text)
def test_arguments_and_env_reach_the_command_exactly(local_box, args, value):
    r = local_box.exec(["python3", "-c", "import os, sys; print(repr((sys.argv[1:], os.environ['V'])))", *args],
                       timeout=30, env={"V": value})
    assert r.ok and r.stdout == repr((args, value)) + "\n", r


@pytest.mark.parametrize("bad", [{"argv": ["echo", "a\0b"]}, {"argv": []}, {"argv": ["true"], "env": {"A=B": "1"}},
                                 {"argv": ["true"], "env": {"A": "x\0"}}])
def test_commands_no_process_can_be_given_are_refused_in_one_line(local_box, bad):
    r = local_box.exec(bad["argv"], timeout=10, env=bad.get("env"))
    assert r.exit_code == 127 and "cannot start" in r.stderr and "\n" not in r.stderr.strip(), r
    assert local_box.exec("echo fine", timeout=10).stdout == "fine\n"
