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
