"""Tool-use envs bound what a call costs (issue 14, item 5): a pathological input to any
tool (calculator, units, dates, Python, search, open, answer) is answered within the
tool's budget, with an answer of bounded size, in the tool and in its scoring, and a
normal call right after works. Real tools: the Python tool runs in a bwrap sandbox."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agenthub
from agenthub.actions import Action, Call
from agenthub.environments.tools.compute import COMPUTE_TOOLS
from agenthub.environments.tools.limits import MAX_ARGUMENT_CHARS, MAX_RESULT_CHARS, argument_chars, bounded
from agenthub.types import tool_calls_message

EXAMPLES = int(os.environ.get("AGENTHUB_HYPOTHESIS_EXAMPLES", "25"))
FAST_BUDGET_S = 1.0  # calculator, units, dates, search, open: milliseconds normally
PYTHON_TIMEOUT_S = 3.0


def one_call(env, name: str, arguments: dict) -> tuple[str, float, dict]:
    """Step one call; (its answer, seconds the step took, info)."""
    start = time.monotonic()
    obs, _, _, _, info = env.step(tool_calls_message([(name, arguments)], "t"))
    return obs[0]["content"], time.monotonic() - start, info


@pytest.fixture(scope="module")
def compute():
    try:
        env = agenthub.make("tools/compute-v0", kinds=["arithmetic"], python_timeout=PYTHON_TIMEOUT_S)
    except agenthub.sandbox.SandboxError as e:
        pytest.skip(f"no sandbox for the Python tool here: {e}")
    yield env
    env.close()


@pytest.fixture(scope="module")
def search():
    env = agenthub.make("tools/search-qa-v0")
    yield env
    env.close()


def assert_usable(env, name: str, arguments: dict, expected: str) -> None:
    env.reset(seed=1)
    answer, elapsed, _ = one_call(env, name, arguments)
    assert expected in answer and elapsed < FAST_BUDGET_S


PATHOLOGICAL = [
    ("calculator", {"expression": "9**9**9"}),
    ("calculator", {"expression": "(10**1000)**1000"}),
    ("calculator", {"expression": "((10**100)**100)**100"}),
    ("calculator", {"expression": "10**999*10**999*10**999*10**999*10**999"}),  # 5,000 digits: str() refuses them
    ("calculator", {"expression": "floor(1e308)" + "*floor(1e308)" * 12}),
    ("calculator", {"expression": "round(5, -10**9)"}),
    ("calculator", {"expression": "-" * 999 + "1"}),
    ("calculator", {"expression": "(" * 300 + "1" + ")" * 300}),
    ("calculator", {"expression": "1+" * 4000 + "1"}),
    ("calculator", {"expression": "factorial(10**6)"}),
    ("calculator", {"expression": "'a'*10**9"}),
    ("calculator", {"expression": "x" * (MAX_ARGUMENT_CHARS * 10)}),
    ("calculator", {"expression": ["1+1"]}),
    ("calculator", {"expression": None}),
    ("convert_units", {"value": 10**400, "from_unit": "m", "to_unit": "km"}),
    ("convert_units", {"value": 10**150, "from_unit": "m", "to_unit": "km"}),
    ("convert_units", {"value": ["1"], "from_unit": "m", "to_unit": "km"}),
    ("convert_units", {"value": 1, "from_unit": 5, "to_unit": "km"}),
    ("convert_units", {"value": 1, "from_unit": None, "to_unit": {"u": "km"}}),
    ("convert_units", {"value": 1, "from_unit": "m" * 9000, "to_unit": "km"}),
    ("date_add", {"date": "2020-01-01", "days": 10**30}),
    ("date_add", {"date": "2020-01-01", "days": 10**400}),
    ("date_add", {"date": "2020-01-01", "days": "1e400"}),
    ("date_add", {"date": "2020-01-01", "days": True}),
    ("date_add", {"date": "2020-01-01" * 900, "days": 1}),
    ("date_diff", {"start": "9999-12-31", "end": "0001-01-01" * 10**4}),
    ("weekday", {"date": [2020, 1, 1]}),
    ("answer", {"answer": "4" * (MAX_ARGUMENT_CHARS + 1)}),
]


@pytest.mark.parametrize("name, arguments", PATHOLOGICAL, ids=lambda v: str(v)[:40])
def test_pathological_calls_answer_errors_within_budget(compute, name, arguments):
    compute.reset(seed=1)
    answer, elapsed, info = one_call(compute, name, arguments)
    assert answer.startswith("Error:"), answer[:200]
    assert elapsed < FAST_BUDGET_S and len(answer) <= MAX_RESULT_CHARS
    assert not compute.unwrapped.answered  # an answer refused is no answer
    assert_usable(compute, "calculator", {"expression": "(3 + 4) * 2"}, "14")


PYTHON_CASES = [
    # over the sandbox's 512 MB: a MemoryError, or the kernel's OOM kill where a cgroup holds it
    ("s = 'a' * 10**9\nprint(len(s))", ("MemoryError", "exit code 137")),
    ("print('a' * 10**8)", ("cut",)),  # 100 MB of output
    ("while True:\n    pass", ("Error: the code ran longer",)),
    ("import sys\nsys.stdout.write('x' * 10**6)\nsys.stderr.write('y' * 10**6)\nraise SystemExit(3)",
     ("exit code 3",)),
]


@pytest.mark.parametrize("code, expected", PYTHON_CASES, ids=["memory", "output", "time", "both-streams"])
def test_python_tool_is_bounded_in_time_and_output(compute, code, expected):
    compute.reset(seed=1)
    answer, elapsed, _ = one_call(compute, "python", {"code": code})
    assert any(e in answer for e in expected) and len(answer) <= MAX_RESULT_CHARS, answer[:300]
    assert elapsed < PYTHON_TIMEOUT_S + 2.0
    answer, elapsed, _ = one_call(compute, "python", {"code": "print(6 * 7)"})
    assert answer.strip() == "42"


def test_oversized_python_code_is_refused_before_it_reaches_the_sandbox(compute):
    compute.reset(seed=1)
    answer, elapsed, _ = one_call(compute, "python", {"code": "#" * 200_000})  # argv beyond Linux's 128 KiB
    assert answer.startswith("Error:") and "10,000" in answer and elapsed < FAST_BUDGET_S


def test_values_only_the_python_api_can_send_are_answered(compute):
    """JSON cannot carry an int of 5,000 digits; a Python caller can: also answered, also in scoring."""
    compute.reset(seed=1)
    action = Action("", calls=[Call("calculator", {"expression": 10**5000}, "a"),
                               Call("convert_units", {"value": 10**5000, "from_unit": "m", "to_unit": "km"}, "b"),
                               Call("date_add", {"date": object(), "days": 1}, "c")])
    obs, reward, terminated, truncated, info = compute.unwrapped.step(action)
    assert [m["content"][:6] for m in obs] == ["Error:"] * 3
    assert info["reward_components"]["tool_params"] == 0.0


SEARCH_CASES = [
    ("search", {"query": " ".join(f"term{i}" for i in range(40))}, "Error:"),  # BM25: ~1 ms per term
    ("search", {"query": "word " * 3000}, "Error:"),
    ("search", {"query": "(a+)+$" * 1000}, "No documents match"),  # one term, however it looks to a regex
    ("search", {"query": "a" * 9000}, "No documents match"),
    ("search", {"query": None}, "Error:"),
    ("open", {"doc_id": "person-" + "9" * 9000}, "Error: no document"),
    ("open", {"doc_id": 10**50}, "Error: no document"),
    ("open", {"doc_id": ["person-0001"]}, "Error:"),
    ("answer", {"answer": "x" * (MAX_ARGUMENT_CHARS * 100)}, "Error:"),
]


@pytest.mark.parametrize("name, arguments, expected", SEARCH_CASES, ids=lambda v: str(v)[:40])
def test_search_tools_are_bounded(search, name, arguments, expected):
    search.reset(seed=1)
    answer, elapsed, info = one_call(search, name, arguments)
    assert answer.startswith(expected) and elapsed < FAST_BUDGET_S and len(answer) <= 300
    assert not search.unwrapped.answered
    assert_usable(search, "open", {"doc_id": "person-0001"}, "person-0001 |")


def test_a_long_answer_within_the_limit_is_scored_quickly(search):
    search.reset(seed=1)
    answer, elapsed, info = one_call(search, "answer", {"answer": "word " * 1900})
    assert answer.startswith("Answer recorded") and elapsed < FAST_BUDGET_S and info["outcome"] < 0.1


JSON = st.recursive(st.none() | st.booleans() | st.integers(min_value=-(10**600), max_value=10**600)
                    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=6)
NON_PYTHON = [t["function"] for t in COMPUTE_TOOLS if t["function"]["name"] not in ("python", "answer")]


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON | st.sampled_from(["9**9**9", "1e400", "-1e308", "10**999", "9999-12-31", "0001-01-01", "k"]),
       which=st.integers(min_value=0))
def test_any_value_in_any_argument_is_answered_within_budget(compute, value, which):
    compute.reset(seed=which % 7)
    calls = []
    for spec in NON_PYTHON:
        names = list(spec["parameters"]["properties"])
        good = {"expression": "1+1", "value": 1, "from_unit": "m", "to_unit": "km", "start": "2020-01-01",
                "end": "2020-02-01", "date": "2020-01-01", "days": 3}
        calls.append((spec["name"], {**{n: good[n] for n in names}, names[which % len(names)]: value}))
    start = time.monotonic()
    obs, _, _, _, info = compute.step(tool_calls_message(calls, "h"))
    assert time.monotonic() - start < FAST_BUDGET_S
    assert all(isinstance(m["content"], str) and len(m["content"]) <= MAX_RESULT_CHARS for m in obs)


def test_limits_helpers():
    assert argument_chars({"a": "x" * 100}) > 100 and argument_chars(10**300) > 100
    assert argument_chars(["x" * 10**6] * 10**3, limit=10) < 10**6 + 100  # stops counting early
    text = bounded("y" * 10**5)
    assert len(text) == MAX_RESULT_CHARS and "100,000 characters" in text
    assert bounded("short") == "short"


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON | st.text(min_size=100, max_size=2000), name=st.sampled_from(["search", "open", "answer"]))
def test_any_value_in_a_search_tool_is_answered_within_budget(search, value, name):
    search.reset(seed=3)
    key = {"search": "query", "open": "doc_id", "answer": "answer"}[name]
    start = time.monotonic()
    obs, _, terminated, _, info = search.step(tool_calls_message([(name, {key: value})], "h"))
    assert time.monotonic() - start < FAST_BUDGET_S
    assert isinstance(obs[0]["content"], str) and len(obs[0]["content"]) <= MAX_RESULT_CHARS
    assert terminated == obs[0]["content"].startswith("Answer recorded")
