"""Computation with tools: the tools themselves, the sandboxed Python tool, ToolRL-style
reward components, and the oracle."""

import shutil

import pytest

import agenthub
from agenthub.agents import load_agent
from agenthub.environments.tools import compute_tools as ct
from agenthub.environments.tools.compute import KINDS
from agenthub.runner import Episode, run_episodes
from agenthub.types import tool_calls_message


def calls(*pairs):
    return tool_calls_message(list(pairs), "c")


def test_calculator_evaluates_arithmetic_and_nothing_else():
    assert ct.calculator("(3 + 4) * 2") == "14"
    assert ct.calculator("7 / 2") == "3.5" and ct.calculator("2^10") == "1024" and ct.calculator("17 // 5") == "3"
    assert ct.calculator("sqrt(16) + round(2.567, 2)") == "6.57"
    assert ct.calculator("1 / 3") == "0.3333333333"
    for bad, why in [("__import__('os').system('true')", "not allowed"), ("2 ** 100000", "too large"),
                     ("1 / 0", "division by zero"), ("3 +", "cannot parse"), ("x.y", "not allowed")]:
        with pytest.raises(ct.ToolError, match=why):
            ct.calculator(bad)


def test_unit_conversion_and_dates():
    assert ct.convert(1, "mi", "km") == pytest.approx(1.609344)
    assert ct.convert(100, "celsius", "F") == pytest.approx(212)
    assert ct.convert(0, "C", "kelvin") == pytest.approx(273.15)
    assert ct.convert(2, "hours", "minutes") == pytest.approx(120) and ct.convert(1, "lb", "oz") == pytest.approx(16)
    assert ct.convert_units("36", "km/h", "m/s") == "36 km/h = 10 m/s"  # numbers written as text are accepted
    with pytest.raises(ct.ToolError, match="cannot convert length"):
        ct.convert(1, "m", "kg")
    with pytest.raises(ct.ToolError, match="unknown unit 'parsec'"):
        ct.convert(1, "parsec", "m")
    assert ct.date_diff("2020-02-01", "2020-03-01") == "29" and ct.date_diff("2021-01-02", "2021-01-01") == "-1"
    assert ct.date_add("2023-12-31", 1) == "2024-01-01" and ct.date_add("2024-03-01", -1) == "2024-02-29"
    assert ct.weekday("2000-01-01") == "Saturday"
    with pytest.raises(ct.ToolError, match="YYYY-MM-DD"):
        ct.weekday("01/02/2000")


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_python_tool_runs_in_a_bwrap_sandbox(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host file")
    runner = ct.PythonRunner("bwrap", timeout=3)
    try:
        assert runner.run("print(sum(range(10)))") == "45" and runner.backend_used == "bwrap"
        assert "FileNotFoundError" in runner.run(f"print(open({str(secret)!r}).read())")
        out = runner.run("import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('1.1.1.1', 80))")
        assert "exit code 1" in out and "Error" in out  # no network
        assert "longer than 3 s" in runner.run("while True: pass")
        assert runner.run("x = 1") == "(no output: print the result)"
    finally:
        runner.close()


def test_python_tool_never_falls_back_to_no_isolation(monkeypatch):
    """Issue 14.9: without bwrap the env refuses to start (saying how to get a sandbox);
    plain host processes only when `local` is asked for by name."""
    monkeypatch.setenv("PATH", "/nonexistent")  # bwrap cannot be found; python3 still can (sandbox PATH)
    with pytest.raises(agenthub.sandbox.SandboxError, match="apt-get install bubblewrap.*Docker"):
        agenthub.make("tools/compute-v0", kinds=["python"])
    env = agenthub.make("tools/compute-v0", kinds=["python"], python_backend="local")
    try:
        env.reset(seed=1)
        obs, reward, terminated, truncated, info = env.step(env.oracle_actions()[0])
        assert info["python_backend"] == "local" and obs[0]["content"].split("\n")[0] == info["ground_truth"]
    finally:
        env.close()


def test_oracle_wins_every_test_task_of_every_kind():
    tasks = agenthub.load_suite("tools/compute", "test", limit=40)
    trajectories = run_episodes([Episode(t.env_id, t.seed) for t in tasks], load_agent("oracle"), concurrency=2)
    assert all(t.success and t.outcome == 1.0 for t in trajectories), [(t.task_id, t.error) for t in trajectories]
    assert {t.turns[-1].info["kind"] for t in trajectories} == set(KINDS)
    for t in trajectories:  # every step of the plan is a perfect ToolRL step
        for turn in t.turns:
            assert turn.reward_components["tool_name"] == turn.reward_components["tool_params"] == 1.0
        assert t.turns[-1].reward_components["answer"] == 1.0
        assert t.turns[-1].info["ground_truth"]


def test_reward_components_follow_toolrl():
    env = agenthub.make("tools/compute-v0", kinds=["units"])
    env.reset(seed=3)
    plan = env.unwrapped.task.plan
    expected = plan[0][0].arguments
    # the right tool with one of three argument values wrong: names match fully, values 2/3
    wrong = {**expected, "to_unit": "m" if expected["to_unit"] != "m" else "km"}
    obs, reward, terminated, truncated, info = env.step(calls(("convert_units", wrong)))
    components = info["reward_components"]
    assert components == {"format": 1.0, "tool_name": 1.0, "tool_params": pytest.approx((1 + 2 / 3) / 2),
                          "answer": 0.0}
    assert reward == pytest.approx(0.05 + 0.1 + 0.1 * (1 + 2 / 3) / 2)
    # the answer step: an extra tool beside it halves the name match; a wrong answer ends the episode unsolved
    obs, reward, terminated, truncated, info = env.step(calls(("weekday", {"date": "2020-01-01"}),
                                                              ("answer", {"answer": "-1"})))
    assert obs[0]["content"] == "Wednesday" and obs[1]["content"] == "Answer recorded: incorrect."
    assert info["reward_components"]["tool_name"] == 0.5 and info["reward_components"]["answer"] == 0.0
    assert terminated and info["success"] is False and info["outcome"] == 0.0
    # units written differently and numbers within rounding still count
    env.reset(seed=3)
    units = {"value": str(expected["value"]), "from_unit": ct.canonical_unit(expected["from_unit"]).upper(),
             "to_unit": expected["to_unit"]}
    *_, info = env.step(calls(("convert_units", units)))
    assert info["reward_components"]["tool_params"] == 1.0
    answer = float(env.unwrapped.task.answer) + 0.004
    *_, info = env.step(calls(("answer", {"answer": f"about {answer:.3f} units"})))
    assert info["success"] and info["reward_components"]["tool_params"] == 1.0


def test_text_and_tool_errors_do_not_end_the_episode():
    env = agenthub.make("tools/compute-v0")
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("I think it is 42")
    assert "No tool was called" in obs[0]["content"] and not terminated
    assert info["reward_components"]["format"] == 0.0 and reward == 0.0
    obs, reward, terminated, truncated, info = env.step(calls(
        ("calculator", {"expression": "1/0"}), ("date_add", {"date": "2020-01-01", "days": 1.5}),
        ("convert_units", {"value": 1, "from_unit": "m", "to_unit": "s"}),
        ("weekday", {"date": "2020-01-01", "tz": "UTC"})))
    assert [m["tool_call_id"] for m in obs] == ["c_0", "c_1", "c_2", "c_3"]
    assert all(m["content"].startswith("Error:") for m in obs) and not terminated
