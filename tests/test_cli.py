"""The CLI as a user meets it: clear one-line errors, play in a terminal, Ctrl-C keeps
what was written."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

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
    for flag, value in [("--episodes", "0"), ("--episodes", "-3"), ("--concurrency", "0"), ("--seed", "-5"),
                        ("--timeout", "-1"), ("--timeout", "nan"), ("--samples", "x")]:
        proc = run_cli("eval", "tools/guess-number-v0", "--agent", "random", flag, value, "--out", str(tmp_path))
        assert proc.returncode == 2 and flag in proc.stderr and "Traceback" not in proc.stderr, (flag, proc.stderr)


def test_serve_mistakes_are_one_clear_line():
    for flag, value in [("--port", "99999"), ("--port", "-1"), ("--port", "http"), ("--max-sessions", "0"),
                        ("--op-timeout", "nan"), ("--idle-timeout", "-5"), ("--max-turns", "0")]:
        proc = run_cli("serve", "tools/guess-number-v0", flag, value)
        assert proc.returncode == 2 and flag in proc.stderr and "Traceback" not in proc.stderr, (flag, proc.stderr)
        assert "Error:" not in proc.stderr and "OverflowError" not in proc.stderr
    token = {"AGENTHUB_SERVER_TOKEN": "t" * 32}
    _one_line_error(run_cli("serve", "tools/guess-number-v0", "--host", "10.99.99.99", "--port", "0", env=token),
                    "cannot listen on 10.99.99.99:0")


def test_an_eval_whose_every_episode_failed_says_why_and_fails(tmp_path):
    (tmp_path / "crashing_agents.py").write_text(
        "def exits(messages, ctx):\n    raise SystemExit(3)\n"
        "def raises(messages, ctx):\n    raise RuntimeError('model server is down')\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for agent, fragment in [("crashing_agents:raises", "model server is down"), ("crashing_agents:exits", "SystemExit")]:
        out = tmp_path / agent.replace(":", "_")
        proc = run_cli("eval", "tools/guess-number-v0", "--agent", agent, "--episodes", "2", "--out", str(out), env=env)
        _one_line_error(proc, "every episode failed", fragment)
        results = json.loads((out / "results.json").read_text())  # what was played is still written
        assert results["errors"] == results["episodes"] == 2
        assert {t["stop_reason"] for t in map(json.loads, (out / "trajectories.jsonl").read_text().splitlines())} == {"error"}


def test_an_eval_never_replaces_an_earlier_one_unasked(tmp_path):
    first = run_cli("eval", "tools/guess-number-v0", "--agent", "oracle", "--episodes", "2", "--out", str(tmp_path))
    assert first.returncode == 0, first.stderr
    kept = (tmp_path / "trajectories.jsonl").read_text()
    _one_line_error(run_cli("eval", "tools/guess-number-v0", "--agent", "random", "--episodes", "3",
                            "--out", str(tmp_path)), "already holds an evaluation", "--overwrite")
    assert (tmp_path / "trajectories.jsonl").read_text() == kept
    (tmp_path / "results.json").unlink()  # a run cut short leaves trajectories only: still kept
    _one_line_error(run_cli("eval", "tools/guess-number-v0", "--agent", "random", "--out", str(tmp_path)),
                    "trajectories.jsonl")
    again = run_cli("eval", "tools/guess-number-v0", "--agent", "random", "--episodes", "3", "--overwrite",
                    "--out", str(tmp_path), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["episodes"] == 3
    (tmp_path / "user").mkdir()
    for n in range(2):  # without --out, each run gets a folder of its own
        assert run_cli("eval", "tools/guess-number-v0", "--agent", "random", "--episodes", "1",
                       cwd=tmp_path / "user").returncode == 0
    assert sorted(p.name for p in (tmp_path / "user" / "runs").iterdir()) == ["eval", "eval-2"]


def test_an_agent_stuck_in_torch_past_its_timeout_does_not_abort_the_exit(tmp_path):
    (tmp_path / "stuck_agents.py").write_text(
        "import torch\n"
        "def in_torch(messages, ctx):\n"
        "    a = torch.randn(300, 300)\n"
        "    while True:\n"
        "        a = torch.tanh(a @ a)\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = run_cli("eval", "tools/guess-number-v0", "--agent", "stuck_agents:in_torch", "--episodes", "2",
                   "--timeout", "1", "--out", str(tmp_path / "out"), env=env)
    # the interpreter's shutdown with a thread inside torch used to abort: SIGABRT, exit 134
    _one_line_error(proc, "every episode failed", "exceeded its 1 s budget")
    assert proc.returncode == 2 and "terminate called" not in proc.stderr
    assert json.loads((tmp_path / "out" / "results.json").read_text())["episodes"] == 2


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
                            env={**os.environ, "PYTHONPATH": str(tmp_path)},
                            # as from a terminal: a suite started in the background (`make test &`) runs
                            # with SIGINT ignored, which Python, and so the child, would inherit
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
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


# --- damaged input files: one line naming file and line, or --skip-invalid ----------

def _trajectories_file(tmp_path, n=4):
    """A real trajectories.jsonl: `n` oracle/random episodes of guess-number."""
    from agenthub.agents import load_agent
    from agenthub.runner import Episode, run_episodes
    from agenthub.types import write_trajectories

    episodes = [Episode("tools/guess-number-v0", seed=s) for s in range(n)]
    trajectories = run_episodes(episodes[: n // 2], load_agent("oracle")) + run_episodes(
        episodes[n // 2:], load_agent("random"))
    path = tmp_path / "trajectories.jsonl"
    write_trajectories(path, trajectories)
    return path


CORRUPT_LINES = {
    "truncated": b'{"env_id": "tools/guess-number-v0", "task_id": "x", "tur',
    "garbage": b"\x00\x01 not json at all",
    "not utf-8": b'{"env_id": "\xff\xfe"}',
    "array": b"[1, 2, 3]",
    "wrong types": b'{"env_id": "e", "task_id": "t", "seed": 0, "agent": "a", "turns": [{"observation": [], '
                   b'"action": {}, "reward": "lots"}]}',
    "turns not a list": b'{"env_id": "e", "task_id": "t", "seed": 0, "agent": "a", "turns": 5}',
    "missing fields": b'{"turns": []}',
    "nested too deep": b"[" * 100_000,
}


def _corrupt(path, line, how):
    lines = path.read_bytes().splitlines(keepends=True)
    lines[line - 1] = CORRUPT_LINES[how] + b"\n"
    path.write_bytes(b"".join(lines))


def test_rewards_score_names_the_corrupt_line_or_skips_it(tmp_path):
    path = _trajectories_file(tmp_path)
    clean = path.read_bytes()
    for how in ("truncated", "wrong types"):  # the command end to end; every kind below
        _corrupt(path, 2, how)
        _one_line_error(run_cli("rewards", "score", str(path), "--reward", "gra"),
                        f"{path}:2: ", "--skip-invalid")
        r = run_cli("rewards", "score", str(path), "--reward", "gra", "--skip-invalid")
        assert r.returncode == 0, (how, r.stderr)
        assert r.stderr.strip() == r.stderr.strip().splitlines()[0]
        assert f"skipped 1 invalid line of {path} (first: line 2: " in r.stderr, (how, r.stderr)
        assert r.stdout.startswith("gra: mean return")
        path.write_bytes(clean)


NON_FINITE = {
    "NaN reward": lambda t: t["turns"][0].update(reward=float("nan")),
    "infinite component": lambda t: t["turns"][0]["reward_components"].update(env=float("-inf")),
    "infinite outcome": lambda t: t.update(outcome=float("inf")),
}


@pytest.mark.parametrize("how", NON_FINITE)
def test_non_finite_rewards_are_left_out_of_scoring_with_a_note(tmp_path, how):
    path = _trajectories_file(tmp_path)
    lines = path.read_text().splitlines()
    damaged = json.loads(lines[1])
    NON_FINITE[how](damaged)
    lines[1] = json.dumps(damaged)  # json writes NaN / Infinity, as an env's NaN reward would be written
    path.write_text("\n".join(lines) + "\n")
    r = run_cli("rewards", "score", str(path), "--reward", "gra", "--reward", "outcome")
    assert r.returncode == 0, r.stderr
    assert f"left out 1 episode(s) of {path} whose rewards or outcome are not finite" in r.stderr
    assert "nan" not in r.stdout.lower() and "inf" not in r.stdout.lower(), r.stdout


def test_every_kind_of_corrupt_line_is_named_or_skipped(tmp_path, capsys):
    from agenthub.cli.inputs import read_trajectories_checked

    path = _trajectories_file(tmp_path)
    clean = path.read_bytes()
    for how in CORRUPT_LINES:
        _corrupt(path, 3, how)
        with pytest.raises(agenthub.AgentHubError) as error:
            read_trajectories_checked(path)
        message = str(error.value)
        assert message.startswith(f"{path}:3: ") and "\n" not in message and len(message) < 400, (how, message)
        assert len(read_trajectories_checked(path, skip_invalid=True)) == 3
        assert f"skipped 1 invalid line of {path} (first: line 3: " in capsys.readouterr().err
        path.write_bytes(clean)


def test_train_progress_reads_trajectories_the_same_way(tmp_path):
    path = _trajectories_file(tmp_path)
    _corrupt(path, 3, "garbage")
    _one_line_error(run_cli("rewards", "train-progress", str(path), "--out", str(tmp_path / "est")),
                    f"{path}:3: not JSON", "--skip-invalid")
    path.write_bytes(b"\n\n")
    _one_line_error(run_cli("rewards", "train-progress", str(path), "--out", str(tmp_path / "est")),
                    f"no trajectories in {path}")


def test_a_torn_last_line_is_left_out_with_a_note(tmp_path):
    path = _trajectories_file(tmp_path)
    path.write_bytes(path.read_bytes() + b'{"env_id": "tools/gue')
    r = run_cli("rewards", "score", str(path), "--reward", "outcome")
    assert r.returncode == 0 and f"{path}:5: ignored a torn last line" in r.stderr
    path.write_bytes(path.read_bytes()[: -len(b'{"env_id": "tools/gue') - 1])  # a last line lacking only "\n"
    r = run_cli("rewards", "score", str(path), "--reward", "outcome", "--out", str(tmp_path / "out.jsonl"))
    assert r.returncode == 0 and r.stderr == ""
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 4


def test_the_readme_reward_names_work(tmp_path):
    path = _trajectories_file(tmp_path)
    r = run_cli("rewards", "score", str(path), "--reward", "gated", "--reward", "turn_level")
    assert r.returncode == 0, r.stderr
    assert [line.split(":")[0] for line in r.stdout.splitlines()] == ["gated", "turn_level"]
    _one_line_error(run_cli("rewards", "score", str(path), "--reward", "gatd"),
                    "unknown reward 'gatd' (did you mean 'gated'?)")


def test_damaged_configs_and_suites_are_one_line(tmp_path):
    for name, data, says in [("bin.yaml", b"\xff\xfe: [", "is not valid YAML"),
                             ("open.yaml", b"a: [\n  b: {", "is not valid YAML"),
                             ("list.yaml", b"- a\n- b\n", "must be a YAML mapping")]:
        (tmp_path / name).write_bytes(data)
        _one_line_error(run_cli("train", str(tmp_path / name), "--out", str(tmp_path / "o")), name, says)
    suite = tmp_path / "suite"
    suite.mkdir()
    for data in (b'{"instances": 5', b"[1, 2]", b"\xff", b'{"instances": [1]}'):
        (suite / "instances.json").write_bytes(data)
        _one_line_error(run_cli("swe", "show", "x", "--suite", str(suite)),
                        f"{suite / 'instances.json'} is not a suite's instances.json")
    _one_line_error(run_cli("serve", "tools/guess-number-v0", "--env-kwargs", "{nope"),
                    "--env-kwargs is not valid JSON")
