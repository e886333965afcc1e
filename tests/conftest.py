import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict | None = None, input: str | None = None, timeout: float = 300,
            cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run `agenthub ARGS` as a user would, in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "agenthub", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, input=input, timeout=timeout, cwd=cwd)


@pytest.fixture
def cli():
    return run_cli


# --- sandbox: docker tests run only where a daemon answers (issue 3) ---------------
def docker_problem() -> str | None:
    """Why the docker backend cannot run here, or None. Starts nothing itself: `make
    test` starts dockerd (scripts/start-dockerd.sh) before pytest runs."""
    try:
        from agenthub.sandbox.images import docker_client
        docker_client()
    except Exception as e:
        return f"docker backend unavailable: {e}"
    return None


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The base sandbox image (built once per machine if missing); skips without a daemon."""
    problem = docker_problem()
    if problem:
        pytest.skip(problem)
    from agenthub.sandbox.images import ensure_base_image
    return ensure_base_image()


@pytest.fixture
def open_box(request):
    """open_box(backend, **limits) -> an open sandbox, closed at teardown."""
    from agenthub import sandbox

    boxes = []

    def opener(backend, **kwargs):
        if backend == "docker":
            kwargs.setdefault("image", request.getfixturevalue("docker_image"))
        box = sandbox.open(backend, **kwargs)
        boxes.append(box)
        return box

    yield opener
    for box in boxes:
        box.close()
