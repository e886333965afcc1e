"""The Sandbox API on every backend: exec, files, timeouts, close, and the warm pool.
Real bwrap, real Docker (skips only where no daemon answers), real host processes."""

import subprocess
import sys
import time

import pytest

from agenthub import sandbox
from agenthub.sandbox import Pool, SandboxError

BACKENDS = ["local", "bwrap", "docker"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_exec_files_and_close(open_box, backend, tmp_path):
    box = open_box(backend)
    r = box.exec("echo out; echo err >&2; exit 3", timeout=30)
    assert (r.exit_code, r.stdout, r.stderr, r.timed_out) == (3, "out\n", "err\n", False)
    assert r.duration > 0 and not r.ok
    assert box.exec(["python3", "-c", "import os; print(os.environ['GREETING'])"], timeout=30,
                    env={"GREETING": "hello"}).stdout == "hello\n"

    box.write_file("/workspace/notes/a.txt", "hi there")
    assert box.read_file("notes/a.txt") == "hi there"
    r = box.exec("cat a.txt && echo more >> a.txt && pwd", timeout=30, cwd="/workspace/notes")
    assert r.ok and r.stdout.startswith("hi there")
    assert box.read_file("/workspace/notes/a.txt") == "hi theremore\n"
    box.write_file("bin.dat", bytes(range(256)))
    assert box.read_file("bin.dat", binary=True) == bytes(range(256))

    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("X = 41\n")
    (src / "top.txt").write_text("top")
    box.upload_dir(src, "/workspace/repo")
    r = box.exec(["python3", "-c", "import pkg.mod; print(pkg.mod.X + 1)"], timeout=30, cwd="/workspace/repo")
    assert r.stdout == "42\n", r
    assert box.exec("echo new > made.txt", timeout=30, cwd="/workspace/repo").ok
    box.download_dir("/workspace/repo", tmp_path / "back")
    assert (tmp_path / "back" / "pkg" / "mod.py").read_text() == "X = 41\n"
    assert (tmp_path / "back" / "made.txt").read_text() == "new\n"
    assert (tmp_path / "back" / "top.txt").read_text() == "top"

    with pytest.raises(SandboxError):
        box.read_file("/workspace/missing.txt")
    assert box.is_alive()
    box.close()
    box.close()  # idempotent
    assert not box.is_alive()
    with pytest.raises(SandboxError, match="closed"):
        box.exec("true", timeout=5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_timeout_reports_and_output_survives(open_box, backend):
    box = open_box(backend)
    r = box.exec("echo started; while true; do :; done", timeout=1)
    assert r.timed_out and r.exit_code != 0
    assert r.stdout == "started\n"
    assert box.exec("echo alive", timeout=30).stdout == "alive\n"  # the sandbox is still usable


def test_unknown_backend_and_bad_size():
    with pytest.raises(SandboxError, match="unknown sandbox backend"):
        sandbox.open("vm")
    with pytest.raises(SandboxError, match="bad size"):
        sandbox.open("local", memory="lots")
    assert sandbox.parse_size("1.5g") == int(1.5 * 1024 ** 3) and sandbox.parse_size("512MiB") == 512 * 1024 ** 2


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_pool_hands_out_started_members_and_replaces_dead_ones(request, backend):
    kwargs = {"image": request.getfixturevalue("docker_image")} if backend == "docker" else {}
    with Pool.of_sandboxes(backend, size=2, check_interval=0.2, **kwargs) as pool:
        assert pool.wait_ready(timeout=60)
        with pool.member() as box:
            assert box.exec("echo ok", timeout=30).stdout == "ok\n"
        assert pool.hits == 1 and pool.misses == 0
        assert pool.wait_ready(timeout=60)  # the used member was replaced
        idle = list(pool._idle)
        idle[0].close()  # a member dies while idle: the health check drops and replaces it
        deadline = time.monotonic() + 60
        while idle[0] in pool._idle and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.wait_ready(timeout=60)
        assert pool.replaced == 1 and idle[0] not in pool._idle
        assert all(m.is_alive() for m in pool._idle)
        members = [pool.acquire() for _ in range(3)]  # one more than the pool holds: started cold
        assert all(m.is_alive() for m in members) and pool.misses >= 1
        for m in members:
            m.close()


LEAKER = """
import sys
from agenthub import sandbox
box = sandbox.open("docker", image=sys.argv[1])
print(box.container.id, flush=True)
sys.stdin.read()
"""


def test_reaper_removes_containers_of_a_killed_process(docker_image):
    import docker

    leaker = subprocess.Popen([sys.executable, "-c", LEAKER, docker_image], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    container_id = leaker.stdout.readline().strip()
    client = docker.from_env()
    assert client.containers.get(container_id).status == "running"
    sandbox.reap()  # the owner is alive: nothing to do
    assert client.containers.get(container_id).status == "running"
    leaker.kill()
    leaker.wait()
    assert sandbox.reap() >= 1
    assert client.containers.list(all=True, filters={"id": container_id}) == []


def test_sandbox_build_cli(cli, docker_image):
    import docker

    r = cli("sandbox", "build", timeout=600)  # builds only if the source changed since `docker_image`
    assert r.returncode == 0, r.stderr
    tag = r.stdout.strip().splitlines()[-1]
    assert tag.startswith("agenthub/base:") and docker.from_env().images.get(tag)
    r = cli("sandbox", "build", "--backend", "bwrap")
    assert r.returncode == 0 and "nothing to build" in r.stdout


def test_image_tags_follow_their_inputs(tmp_path, monkeypatch):
    """Tags are content hashes: same inputs, same tag (no rebuild); any change, a new tag."""
    from agenthub.sandbox import images

    tree = tmp_path / "tree"
    for name in images.SOURCE_FILES:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes((images.PROJECT_ROOT / name).read_bytes())
    (tree / "agenthub").mkdir()
    (tree / "agenthub" / "core.py").write_text("A = 1\n")
    monkeypatch.setattr(images, "PROJECT_ROOT", tree)
    monkeypatch.setattr(images, "SOURCE_DIRS", ("agenthub",))
    tag = images.base_tag.__wrapped__()
    assert tag == images.base_tag.__wrapped__()
    (tree / "agenthub" / "__pycache__").mkdir()
    (tree / "agenthub" / "__pycache__" / "core.cpython-311.pyc").write_bytes(b"junk")  # not an input
    assert images.base_tag.__wrapped__() == tag
    (tree / "agenthub" / "core.py").write_text("A = 2\n")
    assert images.base_tag.__wrapped__() != tag
