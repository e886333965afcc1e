"""The docker image SWE tasks run in, built locally on first use (no registry).

It sits on the sandbox's debootstrap root filesystem rather than on the agenthub base
image: a repository task needs python3 and pytest, not agenthub, and the base image's
tag changes with every agenthub source file while this one changes only with the
rootfs and `Dockerfile` beside this module.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from agenthub import sandbox
from agenthub.sandbox import Sandbox, SandboxError
from agenthub.sandbox.images import build_rootfs, docker_client, image_exists, rootfs_tag

DOCKERFILE = Path(__file__).with_name("Dockerfile")
_lock = threading.Lock()
_known: set[str] = set()  # tags this process has seen exist: no daemon round trip on every reset


def image_tag() -> str:
    digest = hashlib.sha256(rootfs_tag().encode() + DOCKERFILE.read_bytes()).hexdigest()[:16]
    return f"agenthub/swe:{digest}"


def ensure_image(quiet: bool = True) -> str:
    """The SWE image's tag, building it (and the rootfs under it) if missing: about a
    minute, once per machine. Raises SandboxError when docker cannot be used."""
    tag = image_tag()
    if tag in _known:
        return tag
    client = docker_client()
    with _lock:
        if image_exists(client, tag):
            _known.add(tag)
            return tag
        rootfs = rootfs_tag()
        if not image_exists(client, rootfs):
            build_rootfs(client, rootfs, quiet)
        with tempfile.TemporaryDirectory(prefix="agenthub-swe-image-") as ctx:
            shutil.copy(DOCKERFILE, Path(ctx, "Dockerfile"))
            for chunk in client.api.build(path=ctx, tag=tag, buildargs={"ROOTFS": rootfs}, rm=True, forcerm=True,
                                          decode=True, network_mode="host", labels={"agenthub.image": "1"}):
                if "error" in chunk:
                    raise SandboxError(f"docker build of {tag} failed: {chunk['error'].strip()}")
        _known.add(tag)
    return tag


def open_box(backend: str, **args: Any) -> Sandbox:
    """A sandbox that can run the libraries' tests: on docker, from the SWE image."""
    if backend == "docker":
        args = {**args, "image": ensure_image()}
    return sandbox.open(backend, **args)
