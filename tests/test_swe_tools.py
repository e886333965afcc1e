"""The SWE env's tools (issue 14 items 0 and 2): the same answers on every backend, lines
counted on "\\n" only, `Error: ...` for whatever a tool cannot do, never a host file
reached through a link the sandbox planted, and diffs that `git apply` takes."""

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agenthub.environments.swe import patches
from agenthub.environments.swe.libraries import library
from agenthub.environments.swe.tools import RepoTools
from tests.conftest import docker_problem

EXAMPLES = int(os.environ.get("AGENTHUB_HYPOTHESIS_EXAMPLES", "40"))
# Every character str.splitlines() takes for a line break besides "\n": inside a line for git and grep.
ODD_BREAKS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
BACKENDS = ["local", "bwrap", pytest.param("docker", marks=pytest.mark.skipif(
    docker_problem() is not None, reason=str(docker_problem())))]
CONFINED = [b for b in BACKENDS if b != "local"]  # local is no boundary: its tools may see the host


@pytest.fixture
def repo(open_box, request):
    """RepoTools over a small repository in a fresh sandbox of the parametrized backend."""
    backend = request.param
    kwargs = {"image": request.getfixturevalue("swe_image")} if backend == "docker" else {}
    box = open_box(backend, workdir="/workspace", **kwargs)
    box.write_file("pkg/__init__.py", "")
    box.write_file("pkg/mod.py", "def f():\n    return 1\n")
    return RepoTools(box, library("parse"), "/workspace", test_timeout=60)


@pytest.fixture(scope="session")
def swe_image():
    from agenthub.environments.swe.image import ensure_image
    return ensure_image()


def call(repo, name, **args):
    return repo.call(name, args, time_left=60)


@pytest.mark.parametrize("repo", BACKENDS, indirect=True)
def test_view_lists_and_reads_the_same_paths_on_every_backend(repo):
    r = call(repo, "view", path="pkg/mod.py")
    assert r.ok and r.text == "     1\tdef f():\n     2\t    return 1"
    assert call(repo, "view", path="/workspace/pkg/mod.py").text == r.text
    listing = call(repo, "view", path="pkg")
    assert listing.ok and listing.text.split("\n") == ["/workspace/pkg", "/workspace/pkg/__init__.py",
                                                       "/workspace/pkg/mod.py"]
    assert "/workspace/pkg/mod.py" in call(repo, "view", path=".").text
    missing = call(repo, "view", path="pkg/nope.py")
    assert not missing.ok and missing.text.startswith("Error: ")


@pytest.mark.parametrize("repo", BACKENDS, indirect=True)
def test_links_directories_and_bad_arguments_are_answered_not_raised(repo):
    call(repo, "bash", command="ln -s mod.py pkg/link.py && ln -s nowhere pkg/dangling.py && mkdir pkg/sub")
    # a link inside the work dir: every backend reads it the same way, or refuses it the same way
    answers = [call(repo, name, path="pkg/link.py", **args) for name, args in (
        ("view", {}), ("str_replace", {"old_str": "return 1", "new_str": "return 2"}),
        ("insert", {"line": 0, "text": "# top"}))]
    assert all(a.ok or a.text.startswith("Error: ") for a in answers)
    for name, args in (("view", {}), ("str_replace", {"old_str": "x", "new_str": "y"}),
                       ("insert", {"line": 0, "text": "x"}), ("create", {"content": "x"})):
        r = call(repo, name, path="pkg/dangling.py" if name != "create" else "pkg/sub", **args)
        assert not r.ok and r.text.startswith("Error: "), (name, r.text)
    for name, args in (("view", {"path": "pkg/mod.py", "start_line": "two"}),
                       ("insert", {"path": "pkg/mod.py", "line": None, "text": "x"}),
                       ("insert", {"path": "pkg/mod.py", "line": 99, "text": "x"}),
                       ("create", {"path": "", "content": "x"}), ("str_replace", {"path": "pkg/mod.py"}),
                       ("view", {"path": "/etc/passwd"}), ("create", {"path": "/workspace", "content": "x"})):
        r = call(repo, name, **args)
        assert not r.ok and r.text.startswith("Error: "), (name, args, r.text)


@pytest.mark.parametrize("repo", BACKENDS, indirect=True)
def test_lines_are_counted_on_newlines_only_as_grep_does(repo):
    # line k holds the k-th odd break inside it; grep, sed and the tools must agree on every number
    lines = [f"line {k}{brk}still line {k}" for k, brk in enumerate(ODD_BREAKS, 1)] + ["last"]
    call(repo, "create", path="odd.py", content="\n".join(lines) + "\n")
    last = len(lines)
    assert call(repo, "bash", command="grep -n last odd.py").text.startswith(f"{last}:")
    for k, line in enumerate(lines, 1):
        assert call(repo, "view", path="odd.py", start_line=k, end_line=k).text == f"{k:6d}\t{line}", k
    assert len(call(repo, "view", path="odd.py").text.split("\n")) == last
    assert call(repo, "insert", path="odd.py", line=3, text="inserted").ok
    assert repo.box.read_file("odd.py") == "\n".join(lines[:3] + ["inserted"] + lines[3:]) + "\n"
    assert call(repo, "bash", command="sed -n 4p odd.py").text.startswith("inserted")
    edited = call(repo, "str_replace", path="odd.py", old_str="last", new_str="final")
    assert edited.ok and edited.text.split("\n")[-1] == f"{last + 1:6d}\tfinal"
    call(repo, "create", path="crlf.py", content="one\r\ntwo\r\nthree")  # CRLF endings, no final newline
    assert call(repo, "view", path="crlf.py").text == "     1\tone\r\n     2\ttwo\r\n     3\tthree"
    assert call(repo, "insert", path="crlf.py", line=3, text="four").ok
    assert repo.box.read_file("crlf.py") == "one\r\ntwo\r\nthree\nfour\n"


@pytest.mark.parametrize("repo", CONFINED, indirect=True)
def test_links_the_sandbox_plants_never_reach_host_files(repo):
    """Issue 14 item 0 at the SWE level: `ln -s /root r` then `create r/planted` must not
    write the host's /root; str_replace / view / insert through such a link must neither
    change nor show a host file; relative (../..) links the same."""
    secret = Path("/root") / f".agenthub-swe-escape-{secrets.token_hex(4)}"
    planted = Path("/root/planted")
    assert not planted.exists()
    secret.write_text("HOST SECRET\n")
    try:
        call(repo, "bash", command="ln -s /root r && ln -s ../../../../../../../../root rel")
        for link in ("r", "rel"):
            r = call(repo, "create", path=f"{link}/planted", content="pwned")
            assert not planted.exists(), r.text
            for name, args in (("str_replace", {"old_str": "HOST SECRET", "new_str": "pwned"}), ("view", {}),
                               ("insert", {"line": 0, "text": "pwned"})):
                r = call(repo, name, path=f"{link}/{secret.name}", **args)
                assert not r.ok and r.text.startswith("Error: ") and "HOST SECRET" not in r.text, (name, r.text)
            assert secret.read_text() == "HOST SECRET\n"
    finally:
        secret.unlink()
        if planted.exists():
            planted.unlink()
            pytest.fail("a tool wrote /root/planted on the host")


texts = st.lists(st.sampled_from(["a", "b", " ", "\n", "\n", "\r\n", *ODD_BREAKS]), max_size=12).map("".join)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(old=st.one_of(st.none(), texts), new=st.one_of(st.none(), texts))
def test_every_diff_applies_with_git_apply_and_round_trips(tmp_path_factory, old, new):
    work = tmp_path_factory.mktemp("git")
    target = work / "x.py"
    if old is not None:
        target.write_bytes(old.encode())
    patch = patches.diff("x.py", old, new)
    if old == new:
        assert patch == ""
        return
    (work / "p.diff").write_bytes(patch.encode())
    done = subprocess.run(["git", "apply", "--unsafe-paths", "p.diff"], cwd=work, capture_output=True, text=True)
    assert done.returncode == 0, (old, new, patch, done.stderr)
    assert (target.read_bytes().decode() if target.exists() else None) == new
    assert patches.apply({"x.py": old} if old is not None else {}, patch) == {"x.py": new}
