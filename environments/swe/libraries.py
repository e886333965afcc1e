"""The real libraries SWE tasks are made from, and their pinned source snapshots.

A snapshot is a library's sdist from PyPI, pinned by version and sha256: the sdist
carries the library's own test suite, so the repository an agent works in is the
one the maintainers released, tests included. Snapshots are fetched once with pip
(the ordinary client, so whatever index pip is set up to use works) and kept unpacked
in the cache (`$AGENTHUB_CACHE/swe`, default `~/.cache/agenthub/swe`); a fresh machine
needs nothing but PyPI.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from agenthub.errors import AgentHubError


@dataclass(frozen=True)
class Library:
    """A pure-Python library whose sdist ships a fast test suite."""

    name: str  # the PyPI name
    version: str
    sha256: str  # of the sdist, so a snapshot is the same bytes everywhere
    source: str  # the package directory inside the sdist whose functions get bugs
    test_paths: tuple[str, ...]  # what pytest is pointed at
    timing_dependent: tuple[str, ...] = ()  # test files left out: their results depend on the machine's load

    @property
    def snapshot_id(self) -> str:
        return f"{self.name}-{self.version}-{self.sha256[:12]}"


# Chosen because their whole suites run in a few seconds with only pytest installed
# (checked on Debian's python3 3.11 + python3-pytest 7.2). more-itertools (20-30 s) and
# python-slugify (needs text-unidecode) were left out for that reason.
LIBRARIES: dict[str, Library] = {lib.name: lib for lib in (
    Library("inflection", "0.5.1", "1a29730d366e996aaacffb2f1f1cb9593dc38e2ddd30c91250c6dde09ea9b417",
            "inflection", ("test_inflection.py",)),
    Library("parse", "1.22.4", "706d458feed5a81b02768d3156e8070baf6cee7d150a3a3c0cd43101a875c3b5",
            "parse", ("tests",)),
    Library("toolz", "1.2.0", "9667a038e9d6ecba37995e26cb2f59ec6420b6ad8dd9677de59db9b956b08490",
            "toolz", ("toolz",)),
    Library("boltons", "26.2.0", "d39cfd15c1a1c3bd4d705c82252fa9edb8e4f5e8cc039f8e39afac7b1b47e92c",
            "boltons", ("tests",), timing_dependent=("tests/test_socketutils.py",)),  # 10 ms socket timeouts
)}


def library(name: str) -> Library:
    if name not in LIBRARIES:
        raise AgentHubError(f"unknown SWE library {name!r} (known: {', '.join(LIBRARIES)})")
    return LIBRARIES[name]


def is_test_file(path: str) -> bool:
    """Test code: never mutated, and never part of a submitted patch."""
    p = PurePosixPath(path)
    return (any(part in ("tests", "test") for part in p.parts[:-1])
            or p.name.startswith("test_") or p.name.endswith("_test.py") or p.name == "conftest.py")


# Files that configure or extend the test run rather than the library: pytest's config
# files, interpreter start-up hooks (site/user customize, .pth), installed-distribution
# metadata (pytest11 entry points) and the judge's own folder. A submission never
# changes them: they are judged as the snapshot has them.
CONFIG_NAMES = frozenset({"pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", "conftest.py",
                          "sitecustomize.py", "usercustomize.py"})


def is_protected(path: str) -> bool:
    """A test file or anything that configures how the tests run (see CONFIG_NAMES)."""
    p = PurePosixPath(path)
    return (is_test_file(path) or p.name in CONFIG_NAMES or p.suffix == ".pth"
            or any(part.endswith((".dist-info", ".egg-info")) or part.startswith(".agenthub-judge")
                   for part in p.parts))


def is_ignored(path: str) -> bool:
    """Byproducts of running code, never part of a patch."""
    p = PurePosixPath(path)
    return any(part in ("__pycache__", ".pytest_cache", ".git") for part in p.parts) or p.suffix == ".pyc"


def cache_dir() -> Path:
    return Path(os.environ.get("AGENTHUB_CACHE") or Path.home() / ".cache" / "agenthub") / "swe"


_fetch_lock = threading.Lock()


def snapshot(lib: Library) -> Path:
    """The unpacked sdist of `lib` (the repository root), fetching it on first use."""
    root = cache_dir() / "snapshots" / lib.snapshot_id
    if root.is_dir():
        return root
    with _fetch_lock:
        if root.is_dir():
            return root
        sdist = _download(lib)
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{lib.snapshot_id}-", dir=root.parent))
        try:
            with tarfile.open(sdist) as tar:
                tar.extractall(staging, filter="data")
            (top,) = staging.iterdir()  # an sdist holds one folder, NAME-VERSION/
            try:
                top.rename(root)  # atomic: a half-unpacked snapshot is never seen
            except OSError:
                if not root.is_dir():  # another process unpacking it at the same time won
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _download(lib: Library) -> Path:
    """The sdist from the package index via pip, checked against the pinned sha256."""
    target = cache_dir() / "sdists"
    target.mkdir(parents=True, exist_ok=True)
    for existing in target.glob(f"*{lib.version}.tar.gz"):
        if existing.name.replace("_", "-").lower().startswith(lib.name.lower() + "-") and _sha256(existing) == lib.sha256:
            return existing
    with tempfile.TemporaryDirectory(dir=target) as tmp:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                               "--no-binary", ":all:", f"{lib.name}=={lib.version}", "-d", tmp],
                              capture_output=True, text=True)
        files = list(Path(tmp).glob("*.tar.gz"))
        if proc.returncode != 0 or len(files) != 1:
            raise AgentHubError(f"cannot download the sdist of {lib.name}=={lib.version} with pip: "
                                f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:] or 'no .tar.gz'}")
        digest = _sha256(files[0])
        if digest != lib.sha256:
            raise AgentHubError(f"{files[0].name} has sha256 {digest}, expected {lib.sha256}: "
                                f"the index serves different bytes for {lib.name}=={lib.version}")
        return Path(shutil.move(str(files[0]), target / files[0].name))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_files(lib: Library, root: Path) -> list[str]:
    """The library's own modules (repository-relative, sorted), tests excluded."""
    return sorted(str(p.relative_to(root)) for p in (root / lib.source).rglob("*.py")
                  if not is_test_file(str(p.relative_to(root))) and not is_ignored(str(p.relative_to(root))))
