"""The CLI as a user meets it: clear one-line errors, play in a terminal, Ctrl-C keeps
what was written."""

import json
import os
import signal
import subprocess
import sys
import time

import agenthub
from conftest import ROOT, run_cli


def _one_line_error(proc, *fragments):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    assert "Traceback" not in proc.stderr


def test_user_mistakes_are_one_clear_line(tmp_path):
    _one_line_error(run_cli("eval", "tools/guess-numbr-v0", "--agent", "random", "--out", str(tmp_path)),
                    "unknown env id", "did you mean")
    _one_line_error(run_cli("eval", "tools/guess-number-v0", "--agent", "gpt5", "--out", str(tmp_path)),
                    "bad agent spec")
    _one_line_error(run_cli("eval", "tools/guess-number-v0", "--agent", "nosuchmodule:agent",
                            "--out", str(tmp_path)), "cannot load agent")
    _one_line_error(run_cli("eval", "tools/guess-number:dev", "--agent", "random", "--out", str(tmp_path)),
                    "has no split 'dev'")
    _one_line_error(run_cli("info", "nope/nothing-v0"), "unknown env id")
    _one_line_error(run_cli("play", "tools/nothing"), "unknown env id")


def test_list_json_and_info():
    listed = json.loads(run_cli("list", "--json").stdout)
    assert "tools/guess-number-v0" in {e["id"] for e in listed["envs"]}
    assert "tools/guess-number" in {s["name"] for s in listed["suites"]}
    info = run_cli("info", "tools/guess-number-v0")
    assert info.returncode == 0 and "tools: guess" in info.stdout


def test_play_in_the_terminal():
    env = agenthub.make("tools/guess-number-v0")
    env.reset(seed=3)
    secret = env.unwrapped.secret
    guess = 1 if secret != 1 else 2
    proc = run_cli("play", "tools/guess-number-v0", "--seed", "3",
                   input=f'{guess}\nguess {{"number": {secret}}}\n')
    assert proc.returncode == 0, proc.stderr
    assert f"{guess}: {'higher' if guess < secret else 'lower'}" in proc.stdout
    assert f"{secret}: correct" in proc.stdout and "episode won" in proc.stdout


def test_play_lists_admissible_commands_once():
    """TextWorld's observations list the admissible commands already: play adds no second list."""
    proc = run_cli("play", "textworld/w2-o3-q4-v0", "--seed", "0", input="look\n")
    assert proc.returncode == 0, proc.stderr
    assert "[you can:" not in proc.stdout and proc.stdout.count("> ") == 2


SLOW_AGENT = '''
import time
def act(messages, ctx):
    time.sleep(0.05)
    return "1"
'''


def test_ctrl_c_keeps_finished_episodes(tmp_path):
    (tmp_path / "slow_agent.py").write_text(SLOW_AGENT)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "agenthub", "eval", "tools/guess-number-v0", "--agent",
                             "slow_agent:act", "--episodes", "200", "--concurrency", "2", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(tmp_path)})
    jsonl = out / "trajectories.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not jsonl.exists() or len(jsonl.read_text().splitlines()) < 3):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    lines = jsonl.read_text().splitlines()
    assert 3 <= len(lines) < 200
    assert all(json.loads(line)["stop_reason"] == "max_turns" for line in lines)
