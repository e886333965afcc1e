"""`agenthub serve` as a user runs it: a real subprocess on a free port (server tests)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ENV_ID = "tools/guess-number-v0"


def start_server(*args: str, env_id: str = ENV_ID, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start `agenthub serve ENV_ID --port 0 ARGS` and return (process, URL) once it listens.
    `env` adds to (or, with a None value, removes from) the server's environment."""
    environ = {k: v for k, v in os.environ.items() if k not in (env or {}) or env[k] is not None}
    environ.update({k: v for k, v in (env or {}).items() if v is not None})
    if "--uds" not in args and "--port" not in args:
        args = ("--port", "0", *args)
    proc = subprocess.Popen([sys.executable, "-m", "agenthub", "serve", env_id, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environ)
    line = proc.stdout.readline()
    if " at " not in line:
        proc.kill()
        raise AssertionError(f"agenthub serve did not start: {line}{proc.stderr.read()}")
    return proc, line.split(" at ")[1].split()[0]


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def served():
    """served(*args, env=None) -> URL of a fresh `agenthub serve`, stopped at teardown."""
    procs = []

    def start(*args: str, env: dict[str, str] | None = None) -> str:
        proc, url = start_server(*args, env=env)
        procs.append(proc)
        return url

    yield start
    for proc in procs:
        stop_server(proc)
