"""Containment, per backend, with real attacks: network, writes outside the work dir,
a fork bomb, a memory hog, an endless loop, reading host secrets, leftovers after close.

`local` is documented as no security boundary: it is held only to the resource limits
(pids, memory, timeout) and to leaving nothing behind; the isolation tests run on the
backends that claim isolation (docker, bwrap)."""

import os
import socket
import uuid
from pathlib import Path

import pytest

from agenthub.sandbox.leaks import processes_with

ISOLATING = ["bwrap", "docker"]
ALL = ["local", "bwrap", "docker"]

CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("CONNECTED")
except OSError as e:
    print("refused:", e)
"""


@pytest.mark.parametrize("backend", ISOLATING)
def test_no_network(open_box, backend):
    host_service = socket.socket()
    host_service.bind(("127.0.0.1", 0))
    host_service.listen()
    try:
        box = open_box(backend)
        for addr, port in (("1.1.1.1", 80), ("127.0.0.1", host_service.getsockname()[1])):
            r = box.exec(["python3", "-c", CONNECT, addr, str(port)], timeout=30)
            assert "refused:" in r.stdout and "CONNECTED" not in r.stdout, (addr, r)
        interfaces = box.exec(["python3", "-c", "import socket; print([n for _, n in socket.if_nameindex()])"],
                              timeout=30)
        assert interfaces.stdout.strip() == "['lo']"
    finally:
        host_service.close()


@pytest.mark.parametrize("backend", ISOLATING)
def test_no_write_outside_workdir(open_box, backend, tmp_path):
    host_file = tmp_path / "host.txt"
    host_file.write_text("original")
    box = open_box(backend)
    for target in ("/etc/evil", "/usr/evil", "/evil", "/bin/sh", str(host_file)):
        r = box.exec(f"echo pwned > {target}", timeout=30)
        assert r.exit_code != 0, (target, r)
    assert host_file.read_text() == "original"
    assert not Path("/etc/evil").exists() and not Path("/usr/evil").exists()
    assert box.exec("echo fine > inside.txt", timeout=30).ok  # the work dir itself is writable


@pytest.mark.parametrize("backend", ISOLATING)
def test_host_secrets_not_readable(open_box, backend, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOKEN-" + uuid.uuid4().hex)
    box = open_box(backend)
    for command in (f"cat {secret}", f"ls {tmp_path}", "cat /etc/shadow", "ls /root"):
        r = box.exec(command, timeout=30)
        assert r.exit_code != 0, (command, r)
        assert "TOKEN-" not in r.stdout and "secret.txt" not in r.stdout
    assert box.exec("id -u", timeout=30).stdout.strip() != "0"  # not root inside


FORK_BOMB = """
import os, time
n = 0
try:
    while n < 5000:
        if os.fork() == 0:
            time.sleep(1)
            os._exit(0)
        n += 1
    print("FORKED ALL", n)
except OSError as e:
    print("fork refused after", n, e.errno)
"""


@pytest.mark.parametrize("backend", ALL)
def test_fork_bomb_stopped_by_pids_limit(open_box, backend):
    box = open_box(backend, pids=64)
    r = box.exec(["python3", "-c", FORK_BOMB], timeout=60)
    assert "fork refused after" in r.stdout, r
    assert int(r.stdout.split()[3]) < 64
    assert box.exec("echo still here", timeout=30).stdout == "still here\n"


@pytest.mark.parametrize("backend", ALL)
def test_memory_hog_killed(open_box, backend):
    box = open_box(backend, memory="256m")
    r = box.exec(["python3", "-c", "x = bytearray(1024 ** 3); x[::4096] = b'1' * len(x[::4096]); print('SURVIVED')"],
                 timeout=60)
    assert r.exit_code != 0 and "SURVIVED" not in r.stdout, r
    assert box.exec("echo still here", timeout=30).ok


@pytest.mark.parametrize("backend", ALL)
def test_disk_limit(open_box, backend):
    box = open_box(backend, disk="1m")
    r = box.exec("head -c 3000000 /dev/zero > big.bin", timeout=60)
    assert r.exit_code != 0, r
    assert box.exec("rm big.bin && head -c 100000 /dev/zero > small.bin", timeout=60).ok


@pytest.mark.parametrize("backend", ALL)
def test_endless_loop_killed_at_timeout(open_box, backend):
    box = open_box(backend)
    marker = f"{uuid.uuid4().int % 10**6}.{os.getpid()}"
    r = box.exec(["python3", "-c", "while True: pass", marker], timeout=1)
    assert r.timed_out and r.exit_code != 0
    assert processes_with(marker) == []  # the host sees every sandbox's processes


@pytest.mark.parametrize("backend", ALL)
def test_nothing_left_after_close(open_box, backend):
    import docker

    box = open_box(backend)
    marker = f"{uuid.uuid4().int % 10**6}.{os.getpid()}"
    # A process that detaches itself (new session, in the background) to outlive its exec.
    r = box.exec(f"setsid sleep 3{marker} >/dev/null 2>&1 < /dev/null & echo started", timeout=30)
    assert r.stdout == "started\n"
    box.close()
    assert processes_with(f"3{marker}") == []
    if backend == "docker":
        client = docker.from_env()
        assert client.containers.list(all=True, filters={"id": box.container.id}) == []
        assert client.volumes.list(filters={"name": box.volume.name}) == []
    else:
        assert not box.host_dir.exists()
