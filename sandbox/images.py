"""Building sandbox images locally, with no container registry.

Two steps, each cached under a tag that carries a hash of its inputs, so a step runs
again only when its inputs change:

1. `agenthub/rootfs:bookworm-<hash>`: a Debian root filesystem made by debootstrap
   (minbase + python3), imported with `docker import`. Inputs: suite and package list.
2. `agenthub/base:<hash>`: `images/Dockerfile.base` on top: a non-root user and agenthub
   (with its server extra) installed from this source tree. Inputs: the rootfs tag, the
   Dockerfile, the requirements and every source file. Wheels are downloaded on the
   host (with the host's pip configuration) for the image's Python, so the Docker build
   itself needs no network.

An env family may ship `Dockerfile.deps` in its folder (`environments/<family>/`, found by
path, so this module imports no family); its envs then run in an image built
in two more steps, so that the heavy part does not depend on the source tree:

3. `agenthub/<family>-deps:<hash>`: the family's Dockerfile on the rootfs (`ARG ROOTFS` /
   `FROM ${ROOTFS}`): its system packages (apt may use the host network) and its Python
   packages, the pyproject extra named after the family, installed into the venv
   `/opt/agenthub`. The wheels are built on the host by an interpreter of the image's
   Python version: packages published only as source (jericho, fast-downward) compile
   there with the host's compiler, so the host should be Linux with a glibc no newer than
   the image's. Inputs: the rootfs tag, the Dockerfile and the extra's requirements.
4. `agenthub/<family>:<hash>`: `Dockerfile.base` on top of that instead of the bare rootfs.
   Docker's layer cache keeps the base's dependency layer, so a source change rebuilds
   only the thin source layer (under a minute), never Chromium or TextWorld.

Users with a registry can `docker push` / `docker pull` these tags as usual.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from agenthub.sandbox.base import SandboxError

IMAGES_DIR = Path(__file__).resolve().parent / "images"
# agenthub/sandbox and agenthub/environments are siblings in a checkout and when installed
ENVIRONMENTS_DIR = Path(__file__).resolve().parent.parent / "environments"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("agenthub", "environments", "rewards", "trainers", "sandbox")
SOURCE_FILES = ("setup.py", "pyproject.toml", "README.md")
SUITE = "bookworm"
ROOTFS_PACKAGES = ("python3", "python3-venv")
IMAGE_PYTHON = "3.11"  # bookworm's python3: the version wheels are fetched for
SERVER_EXTRA = "server"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
Report = Callable[[str], None]  # called with a line saying what the build is doing now


def print_step(line: str) -> None:
    print(f"[agenthub sandbox build] {line}", file=sys.stderr, flush=True)


@contextmanager
def _exclusive(name: str) -> Iterator[None]:
    """One builder of `name` at a time on this machine (threads and processes alike:
    flock locks conflict between any two opens of the file)."""
    with open(Path(tempfile.gettempdir(), f"agenthub-build-{name}.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _reporter(quiet: bool, report: Report | None) -> Report:
    return report or ((lambda line: None) if quiet else print_step)


def docker_client() -> Any:
    """A Docker SDK client, or a one-line SandboxError saying why there is none."""
    try:
        import docker
    except ImportError as e:
        raise SandboxError("the docker backend needs the Docker SDK: pip install 'agenthub[sandbox]'") from e
    client = None
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as e:
        if client is not None:  # its half-open connection would hold a descriptor until a GC
            client.close()
        raise SandboxError(f"no Docker daemon answers ({type(e).__name__}); start one, e.g. "
                           f"`dockerd --iptables=false &` as root") from e
    return client


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def rootfs_tag() -> str:
    return f"agenthub/rootfs:{SUITE}-" + _digest([SUITE.encode(), " ".join(ROOTFS_PACKAGES).encode()])


def _source_files() -> list[Path]:
    if not (PROJECT_ROOT / "setup.py").is_file():
        raise SandboxError(f"images are built from an agenthub source checkout; none at {PROJECT_ROOT}")
    files = [PROJECT_ROOT / f for f in SOURCE_FILES if (PROJECT_ROOT / f).is_file()]
    for d in SOURCE_DIRS:
        files += [p for p in (PROJECT_ROOT / d).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")]
    return sorted(files)


def _project() -> dict[str, Any]:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]


def requirements() -> list[str]:
    """What the base image installs besides agenthub itself: the core deps and the server extra."""
    project = _project()
    return [*project["dependencies"], *project["optional-dependencies"][SERVER_EXTRA]]


@functools.cache
def base_tag() -> str:
    """Computed once per process, so one run uses one image even while the source tree
    changes under it."""
    dockerfile = IMAGES_DIR / "Dockerfile.base"
    parts = [rootfs_tag().encode(), dockerfile.read_bytes(), "\n".join(requirements()).encode()]
    for f in _source_files():
        parts += [str(f.relative_to(PROJECT_ROOT)).encode(), f.read_bytes()]
    return "agenthub/base:" + _digest(parts)


def family_requirements(family: str) -> list[str]:
    """The Python packages a family's image adds: the pyproject extra of the same name."""
    return list(_project()["optional-dependencies"].get(family, []))


def family_dockerfile(family: str) -> Path:
    """Where a family's image recipe is (it may not exist: the family has no image)."""
    return ENVIRONMENTS_DIR / family / "Dockerfile.deps"


def family_deps_tag(family: str) -> str | None:
    dockerfile = family_dockerfile(family)
    if not dockerfile.is_file():
        return None
    parts = [rootfs_tag().encode(), dockerfile.read_bytes(), "\n".join(family_requirements(family)).encode()]
    return f"agenthub/{family}-deps:" + _digest(parts)


def family_tag(family: str) -> str | None:
    """The tag of the image a family's envs run in, or None if the family has no Dockerfile."""
    deps = family_deps_tag(family)
    return None if deps is None else f"agenthub/{family}:" + _digest([deps.encode(), base_tag().encode()])


def image_exists(client: Any, tag: str) -> bool:
    import docker.errors
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_base_image(client: Any | None = None, quiet: bool = False, report: Report | None = None) -> str:
    """The base image's tag, building whatever is missing first (minutes, once).
    Progress lines go to `report` (default: stderr, unless `quiet`)."""
    report = _reporter(quiet, report)
    client = client or docker_client()
    tag = base_tag()
    if image_exists(client, tag):
        return tag
    with _exclusive("base"):
        if not image_exists(client, tag):  # another process may have built it meanwhile
            rootfs = rootfs_tag()
            build_rootfs(client, rootfs, report=report)
            build_base(client, tag, rootfs, report=report)
            _remove_older(client, tag)
    return tag


def image_for_env(env_id: str, client: Any | None = None, quiet: bool = False, report: Report | None = None) -> str:
    """The image an env runs in: its family's image if the family has one, else the base.
    Builds whatever is missing first (minutes the first time, under a minute after a source change)."""
    report = _reporter(quiet, report)
    client = client or docker_client()
    family = env_id.split("/", 1)[0]
    tag, deps = family_tag(family), family_deps_tag(family)
    if tag is None or deps is None:
        return ensure_base_image(client, report=report)
    if image_exists(client, tag):
        return tag
    with _exclusive(family):
        if not image_exists(client, tag):  # another process may have built it meanwhile
            rootfs = rootfs_tag()
            build_rootfs(client, rootfs, report=report)
            if not image_exists(client, deps):
                build_family_deps(client, family, deps, rootfs, report=report)
                _remove_older(client, deps)
            build_base(client, tag, deps, report=report)
            _remove_older(client, tag)
    return tag


_BUILT_TAG = re.compile(r"[^:]+:[0-9a-f]{16}")  # what `_digest` names; other tags are someone else's


def _remove_older(client: Any, tag: str, keep_for: float = 3600) -> None:
    """Drop the tags this one replaced over `keep_for` seconds ago (a process that
    started earlier may still use them); images in use by a container stay anyway, and
    so do tags the builder did not make (`agenthub/web:mine`)."""
    repo = tag.split(":")[0]
    for image in client.images.list(name=repo):
        created = datetime.fromisoformat(image.attrs["Created"][:19]).replace(tzinfo=timezone.utc)
        if (datetime.now(timezone.utc) - created).total_seconds() < keep_for:
            continue
        for old in image.tags:
            if old != tag and _BUILT_TAG.fullmatch(old):
                try:
                    client.images.remove(old)
                except Exception:
                    pass


def build_rootfs(client: Any, tag: str, quiet: bool = False, report: Report | None = None) -> None:
    """debootstrap a minimal Debian and `docker import` it (unless it exists)."""
    report = _reporter(quiet, report)
    with _exclusive("rootfs"):
        if not image_exists(client, tag):
            _build_rootfs(client, tag, report)


def _build_rootfs(client: Any, tag: str, report: Report) -> None:
    if shutil.which("debootstrap") is None:
        raise SandboxError("building the base image needs debootstrap: apt-get install debootstrap")
    if os.geteuid() != 0:
        raise SandboxError("debootstrap needs root: run `agenthub sandbox build` as root once")
    mirror = os.environ.get("AGENTHUB_DEBIAN_MIRROR", DEFAULT_MIRROR)
    with tempfile.TemporaryDirectory(prefix="agenthub-rootfs-") as tmp:
        rootfs, archive = Path(tmp, "rootfs"), Path(tmp, "rootfs.tar")
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(ROOTFS_PACKAGES)}", SUITE,
              str(rootfs), mirror], f"debootstrap {SUITE} (about a minute)", report)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / cache, ignore_errors=True)
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(archive), "."], "packing the rootfs", report)
        repo, _, version = tag.partition(":")
        report(f"docker import -> {tag}")
        client.api.import_image_from_file(str(archive), repository=repo, tag=version)


def build_base(client: Any, tag: str, rootfs: str, quiet: bool = False, report: Report | None = None) -> None:
    report = _reporter(quiet, report)
    with tempfile.TemporaryDirectory(prefix="agenthub-image-") as tmp:
        ctx = Path(tmp)
        shutil.copy(IMAGES_DIR / "Dockerfile.base", ctx / "Dockerfile")
        reqs = requirements()
        (ctx / "requirements.txt").write_text("\n".join(reqs) + "\n")
        _run([sys.executable, "-m", "pip", "download", "-q", "--dest", str(ctx / "wheels"),
              "--only-binary=:all:", "--python-version", IMAGE_PYTHON, "--implementation", "cp",
              *_platform_args(), *reqs, "setuptools>=68", "wheel"],
             "downloading wheels for the image", report)
        src = ctx / "src"
        for f in _source_files():
            dest = src / f.relative_to(PROJECT_ROOT)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
        _docker_build(client, str(ctx), tag, {"ROOTFS": rootfs}, report)


def build_family_deps(client: Any, family: str, tag: str, rootfs: str, quiet: bool = False,
                      report: Report | None = None) -> None:
    """The family's Dockerfile on the rootfs, with the family's wheels in its context."""
    report = _reporter(quiet, report)
    with tempfile.TemporaryDirectory(prefix="agenthub-image-") as tmp:
        ctx = Path(tmp)
        shutil.copy(family_dockerfile(family), ctx / "Dockerfile")
        reqs = family_requirements(family)
        (ctx / "requirements.txt").write_text("\n".join(reqs) + "\n")
        (ctx / "wheels").mkdir()
        if reqs:
            _run([_image_python(), "-m", "pip", "wheel", "-q", "--prefer-binary", "--wheel-dir", str(ctx / "wheels"),
                  *reqs], f"building wheels for the {family} image (source packages compile once)", report)
        _docker_build(client, str(ctx), tag, {"ROOTFS": rootfs}, report, network="host")


def _image_python() -> str:
    """A host interpreter of the image's Python version: `pip wheel` picks and builds
    wheels for the interpreter that runs it."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == IMAGE_PYTHON:
        return sys.executable
    found = shutil.which(f"python{IMAGE_PYTHON}")
    if found is None:
        raise SandboxError(f"building a family image needs python{IMAGE_PYTHON} (the image's Python) on the "
                           f"host, to build wheels for it; none on PATH")
    return found


def _platform_args() -> list[str]:
    # bookworm's glibc is 2.36; pip matches these tags literally, so list the common older ones.
    arch = platform.machine()
    tags = [f"manylinux_2_{v}_{arch}" for v in (36, 34, 31, 28, 27, 24, 17)] + [f"manylinux2014_{arch}"]
    return [arg for tag in tags for arg in ("--platform", tag)]


def _docker_build(client: Any, ctx: str, tag: str, buildargs: dict[str, str], report: Report,
                  network: str | None = None) -> None:
    report(f"docker build -> {tag}")
    for chunk in client.api.build(path=ctx, tag=tag, buildargs=buildargs, rm=True, forcerm=True,
                                  decode=True, network_mode=network,
                                  labels={"agenthub.image": "1"}):
        if "error" in chunk:
            raise SandboxError(f"docker build of {tag} failed: {chunk['error'].strip()}")
        line = chunk.get("stream", "").strip()
        if line.startswith("Step "):
            report(f"docker build -> {tag}: {line}")


def _run(argv: list[str], what: str, report: Report) -> None:
    report(what)
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise SandboxError(f"{what} failed: {' | '.join(tail)}")
