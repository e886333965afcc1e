"""Issue 14.0: nothing a sandbox creates can steer a host-side file operation outside
its work dir. Real attacks on every backend: symlinks and hard links to files and dirs
outside, nested, relative (`../..`), absolute, looping, planted before an operation,
between two, and flipped while operations run; through read_file, write_file,
upload_dir, download_dir (and the local backend's exec cwd). Each is refused with a
SandboxPathError and the host files are untouched. A property test drives `safefs`
itself with random link farms."""

import io
import os
import shutil
import tarfile
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agenthub.sandbox import SandboxPathError, safefs

BACKENDS = ["local", "bwrap", "docker"]
SECRET = "HOST-SECRET-" + "x" * 8
ESCAPE = "/".join([".."] * 12)  # enough `..` to climb from any work dir to the host's /


@pytest.fixture
def outside():
    """A host dir outside every sandbox, on the work dirs' filesystem (/dev/shm) so that
    hard links into it are possible; holds a secret and a victim file."""
    base = Path(tempfile.mkdtemp(prefix="agenthub-outside-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK)
                                 else None))
    (base / "secret.txt").write_text(SECRET)
    (base / "victim.txt").write_text("untouched")
    (base / "dir").mkdir()
    (base / "dir" / "secret.txt").write_text(SECRET)
    base.chmod(0o755)
    yield base
    shutil.rmtree(base)


def snapshot(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): (p.read_text() if p.is_file() else "<dir>") for p in sorted(path.rglob("*"))}


def refused(op, *args):
    with pytest.raises(SandboxPathError):
        result = op(*args)
        assert SECRET not in str(result)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reads_through_links_are_refused(open_box, backend, outside):
    box = open_box(backend)
    before = snapshot(outside)
    r = box.exec(f"ln -s /etc etcdir; ln -s {outside} o; ln -s {outside}/secret.txt s; mkdir -p a/b n; "
                 f"ln -s {ESCAPE} a/b/up; ln -s {outside} n/l1; ln -s n/l1 l2; "
                 f"ln -s /workspace/{ESCAPE}{outside} w; ln -s loop loop; echo in > in.txt; ln in.txt hard; "
                 f"mkfifo fifo", timeout=30)
    assert r.ok, r
    for path in ("/workspace/etcdir/shadow", "etcdir/hostname", "o/secret.txt", "s", f"a/b/up{outside}/secret.txt",
                 "l2/secret.txt", "l2/dir/secret.txt", "w/secret.txt", "loop", "hard", "fifo", "/etc/hostname",
                 "../../etc/hostname"):
        refused(box.read_file, path)
    assert snapshot(outside) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_writes_through_links_are_refused(open_box, backend, outside):
    box = open_box(backend)
    before = snapshot(outside)
    r = box.exec(f"ln -s {outside} o; ln -s {outside}/victim.txt v; mkdir -p a/b; ln -s {ESCAPE} a/b/up; "
                 f"mkdir n; ln -s {outside}/dir n/d; ln -s n/d nd; echo in > in.txt; ln in.txt hard", timeout=30)
    assert r.ok, r
    for path in ("o/planted", "v", f"a/b/up{outside}/planted", "nd/planted", "o/new/dir/planted", "hard", "n"):
        refused(box.write_file, path, "pwned")
    assert snapshot(outside) == before
    assert box.exec("cat in.txt", timeout=30).stdout == "in\n"  # the hard-linked file kept its content


@pytest.mark.parametrize("backend", BACKENDS)
def test_directory_copies_refuse_links_out(open_box, backend, outside, tmp_path):
    box = open_box(backend)
    before = snapshot(outside)
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("X = 1\n")
    r = box.exec(f"ln -s {outside} o; mkdir dst; ln -s {outside} dst/pkg; "
                 f"mkdir t1 t2 t3 t4; echo a > t1/a.txt; ln -s {outside}/secret.txt t1/s; "
                 f"ln -s ../../{ESCAPE} t2/up; echo b > t3/b.txt; ln t3/b.txt t3/h; ln -s ../in.txt t4/out", timeout=30)
    assert r.ok, r
    refused(box.upload_dir, src, "o/sub")          # destination through a link
    refused(box.upload_dir, src, "dst")            # a dir inside the destination is a link
    for tree in ("o", "t1", "t2", "t3", "t4"):       # source through a link; links/hard links inside
        dest = tmp_path / f"back-{tree}"
        refused(box.download_dir, tree, dest)
        assert not any(p.is_symlink() and not p.resolve().is_relative_to(dest.resolve()) for p in dest.rglob("*"))
        assert SECRET not in "".join(p.read_text() for p in dest.rglob("*") if p.is_file() and not p.is_symlink())
    assert snapshot(outside) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_links_inside_the_work_dir_still_work(open_box, backend, tmp_path):
    box = open_box(backend)
    r = box.exec("mkdir -p d/e && echo hi > d/e/a.txt && ln -s d/e/a.txt la && ln -s /workspace/d dabs && "
                 "ln -s e d/le && ln -s d/e/../e up", timeout=30)
    assert r.ok, r
    assert box.read_file("la") == box.read_file("dabs/e/a.txt") == box.read_file("d/le/a.txt") == "hi\n"
    assert box.read_file("up/a.txt") == "hi\n"
    box.write_file("la", "changed\n")  # through an in-tree link, like `echo > la`
    assert box.exec("cat d/e/a.txt", timeout=30).stdout == "changed\n"
    box.download_dir("d", tmp_path / "back")
    assert (tmp_path / "back" / "le").is_symlink() and (tmp_path / "back" / "le" / "a.txt").read_text() == "changed\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_links_planted_between_and_during_operations(open_box, backend, outside):
    box = open_box(backend)
    before = snapshot(outside)
    box.write_file("d/f.txt", "1")
    assert box.exec(f"rm -r d && ln -s {outside} d", timeout=30).ok  # a dir the host used becomes a link
    refused(box.write_file, "d/f.txt", "2")
    refused(box.read_file, "d/secret.txt")
    # A command flips `race` between a real dir and a link out while the host writes into it.
    flipper = threading.Thread(target=box.exec, args=(
        f"end=$(($(date +%s) + 3)); while [ $(date +%s) -lt $end ]; do "
        f"rm -rf race; ln -s {outside} race; rm -f race; mkdir race; done",), kwargs={"timeout": 10})
    flipper.start()
    outcomes = set()
    while flipper.is_alive():
        for op in (lambda: box.write_file("race/planted", "x"), lambda: box.read_file("race/secret.txt")):
            try:
                outcomes.add(SECRET in str(op()))
            except SandboxPathError:
                outcomes.add("refused")
    flipper.join()
    assert True not in outcomes
    assert snapshot(outside) == before


def test_local_exec_cwd_through_a_link_is_refused(open_box, outside):
    box = open_box("local")
    assert box.exec(f"ln -s {outside} o", timeout=30).ok
    with pytest.raises(SandboxPathError):
        box.exec("touch planted", timeout=30, cwd="/workspace/o")
    assert not (outside / "planted").exists()


def test_host_hard_link_into_the_work_dir_is_refused(open_box, outside):
    """A hard link to a host file (what a local sandbox can make) is neither read nor written."""
    box = open_box("local")
    assert box.exec(f"ln {outside}/secret.txt s && ln {outside}/victim.txt v", timeout=30).ok
    refused(box.read_file, "s")
    refused(box.write_file, "v", "pwned")
    assert (outside / "victim.txt").read_text() == "untouched"


# -- property: random link farms against safefs itself ----------------------------------

EXAMPLES = int(os.environ.get("AGENTHUB_HYPOTHESIS_EXAMPLES", "60"))
NAMES = ["a", "b", "c"]
TARGETS = ["a", "b", "a/b", "..", "../..", "../outside", ESCAPE, "/", "/outside", "/work", "/work/a", "/work/..",
           "/work/../outside", "OUT", "OUT/secret.txt", "b/../..", "c/../a"]
paths = st.lists(st.sampled_from(NAMES + [".."]), min_size=1, max_size=4).map("/".join)
plant = st.tuples(st.sampled_from(["symlink", "mkdir", "file", "hardlink"]),
                 st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join), st.sampled_from(TARGETS))
operation = st.tuples(st.sampled_from(["read", "write", "archive", "extract", "open_dir"]), paths)


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plants=st.lists(plant, max_size=8), ops=st.lists(operation, min_size=1, max_size=6))
def test_safefs_never_leaves_the_tree(tmp_path, plants, ops):
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    work, out = base / "work", base / "outside"
    work.mkdir()
    out.mkdir()
    (out / "secret.txt").write_text(SECRET)
    before = snapshot(out)
    for kind, path, target in plants:  # what a sandboxed process could make (by path: it is inside)
        target = target.replace("OUT", str(out))
        p = work / path
        try:
            if os.path.lexists(p) or not p.parent.resolve(strict=True).is_relative_to(work.resolve()):
                continue  # the sandbox itself cannot create anything outside its work dir
            if kind == "symlink":
                os.symlink(target, p)
            elif kind == "mkdir":
                p.mkdir()
            elif kind == "file":
                p.write_text("inside")
            else:
                os.link(out / "secret.txt", p)
        except (OSError, RuntimeError):  # RuntimeError: a symlink loop on the way
            pass
    archive = _archive_with_escapes()
    with safefs.Tree(str(work), "/work") as tree:
        for kind, path in ops:
            try:
                if kind == "read":
                    assert SECRET.encode() not in tree.read(path)
                elif kind == "write":
                    tree.write(path, b"pwned")
                elif kind == "archive":
                    assert SECRET.encode() not in tree.archive(path)
                elif kind == "extract":
                    tree.extract(path, archive)
                else:
                    os.close(tree.open_dir(path))
            except safefs.PathError:
                pass
    assert snapshot(out) == before
    assert sorted(p.name for p in base.iterdir()) == ["outside", "work"]


def _archive_with_escapes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, target in (("a", tarfile.DIRTYPE, ""), ("a/f", tarfile.REGTYPE, ""),
                                   ("a/l", tarfile.SYMTYPE, "../.."), ("a/l/planted", tarfile.REGTYPE, "")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            data = b"pwned" if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_deep_paths_are_refused_without_exhausting_descriptors(tmp_path):
    """Each level walked holds a descriptor: a planted 300-level tree or link chain is
    refused at safefs.MAX_DEPTH levels, and every descriptor is given back."""
    work = tmp_path / "work"
    deep = work.joinpath(*["d"] * 300)
    deep.mkdir(parents=True)
    (deep / "f").write_text("x")
    os.symlink("/".join(["d"] * 300), work / "chain")
    fds = len(os.listdir("/proc/self/fd"))
    with safefs.Tree(str(work), "/work") as tree:
        for op in (lambda: tree.read("/".join(["d"] * 300 + ["f"])), lambda: tree.read("chain/f"),
                   lambda: tree.archive("d"), lambda: tree.write("chain/g", b"x")):
            with pytest.raises(safefs.PathError, match="directory levels"):
                op()
        os.close(tree.open_dir("/".join(["d"] * 250)))  # within the limit: fine
    assert len(os.listdir("/proc/self/fd")) == fds
