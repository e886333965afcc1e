"""Web tools: every argument a model can send, of any JSON type or size, is an `Error: ...`
answer or a valid action, never an exception out of `env.step` (issue 14, item 4).
The fast checks exercise the argument parsing alone; the others a real Chromium."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agenthub
from agenthub.actions import Action, Call
from agenthub.types import tool_calls_message

try:
    from agenthub.environments.web.arguments import (MAX_TEXT, SHOWN_CHARS, ToolError, coordinate, element_ref,
                                                     shown, text_argument)
    from agenthub.environments.web.browser import browser_binaries

    browser_binaries()
except (agenthub.AgentHubError, ImportError) as e:
    pytest.skip(f"web envs cannot run here: {e}", allow_module_level=True)

EXAMPLES = int(os.environ.get("AGENTHUB_HYPOTHESIS_EXAMPLES", "10"))
BAD_REFS = ["--5", "²", "٣", "５", "1_0", "5.5", 5.5, "5.0", "-5", -5, "+5", "0x5", "5e0", "", " ", "four", True,
            False, None, [5], {"ref": 5}, 10**30, 10**5000, "9" * 5000, float("inf"), float("nan"), 2**63]
PYTHON_ONLY = BAD_REFS[-5:-4] + BAD_REFS[-3:-1]  # no JSON text carries these: only the Python API can
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=6)


def calls(*pairs):
    return tool_calls_message(list(pairs), "t")


# -- the checks alone --------------------------------------------------------------------------

@pytest.mark.parametrize("value", BAD_REFS, ids=shown)
def test_bad_refs_are_tool_errors(value):
    with pytest.raises(ToolError, match="ref must be an element number"):
        element_ref(value)


@pytest.mark.parametrize("value, ref", [(5, 5), ("5", 5), (" 5 ", 5), (5.0, 5), ("0012", 12), (0, 0)])
def test_good_refs(value, ref):
    assert element_ref(value) == ref


@settings(max_examples=EXAMPLES * 20, derandomize=True)
@given(value=JSON | st.integers(min_value=-(10**6000), max_value=10**6000) | st.text())
def test_argument_checks_never_fail_otherwise(value):
    for check in (element_ref, lambda v: text_argument(v, "text", MAX_TEXT), lambda v: coordinate(v, "x")):
        try:
            check(value)
        except ToolError as e:
            assert len(str(e)) < 200
    assert len(shown(value)) <= SHOWN_CHARS


def test_text_arguments():
    assert text_argument("hello", "text", 10) == "hello" and text_argument(12, "text", 10) == "12"
    for value, message in [(None, "must be a string"), (["a"], "must be a string"), (True, "must be a string"),
                           ("a" * 11, "at most 10"), ("go\ue007", "key codes")]:
        with pytest.raises(ToolError, match=message):
            text_argument(value, "text", 10)
    with pytest.raises(ToolError, match="finite"):
        coordinate(10**400, "x")


# -- on a real page ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def login():
    env = agenthub.make("web/login-user-v0")
    yield env
    env.close()


def test_malformed_arguments_answer_errors_on_a_real_page(login):
    login.reset(seed=3)
    user = login.unwrapped.page.find(id="username")[0].ref
    json_refs = [ref for ref in BAD_REFS if ref not in PYTHON_ONLY]
    bad = [("click", {"ref": ref}) for ref in json_refs] + [
        ("type", {"ref": user, "text": None}), ("type", {"ref": user, "text": ["x"]}),
        ("type", {"ref": user, "text": "x" * (MAX_TEXT + 1)}), ("type", {"ref": user, "text": "a\ue007"}),
        ("type", {"ref": "²", "text": "x"}), ("select", {"ref": user, "option": None}),
        ("select", {"ref": user, "option": {"a": 1}}), ("select", {"ref": "--5", "option": "x"}),
        ("press", {"key": None}), ("press", {"key": 13}), ("press", {"key": "x" * 10**5}),
        ("press", {"key": ["Enter"]}), ("press", {"key": ""}), ("press", {"key": "++"}),
        ("scroll", {"direction": ["up"]}), ("scroll", {"direction": "up", "ref": "٣"}),
        ("scroll", {"direction": None}), ("click_xy", {"x": 10**400, "y": 1}), ("click_xy", {"x": "1", "y": 1}),
        ("click_xy", {"x": None, "y": [1]}),
    ]
    obs, reward, terminated, truncated, info = login.step(calls(*bad))
    replies = [m["content"] for m in obs[:len(bad)]]
    assert all(r.startswith("Error:") and len(r) < 400 for r in replies), replies
    assert "ref must be an element number" in replies[0] and "ref must be an element number" in replies[1]
    assert not terminated and info["reward_components"]["invalid_calls"] == len(bad)
    # the env is still usable: a good call right after works
    obs, *_ = login.step(calls(("type", {"ref": " %d " % user, "text": "bob"})))
    assert obs[0]["content"] == f'Typed "bob" into [{user}].' and 'value="bob"' in obs[-1]["content"]


def test_values_only_python_can_send_are_answered_too(login):
    """Through the Python API a call's arguments are any Python values, also ones JSON cannot carry."""
    login.reset(seed=3)
    values = PYTHON_ONLY + [object(), b"5", 5 + 0j]
    action = Action("", calls=[Call(name, {key: value, "y": 1}, f"c{i}") for i, value in enumerate(values)
                               for name, key in [("click", "ref"), ("click_xy", "x"), ("press", "key")]])
    obs, reward, terminated, truncated, info = login.unwrapped.step(action)
    assert len(obs) == 3 * len(values) + 1
    assert [m["content"] for m in obs[:-1] if not m["content"].startswith("Error:")] == []


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=JSON)
def test_any_json_value_in_any_argument_is_answered(login, value):
    login.reset(seed=3)
    pairs = [(name, {**args, key: value}) for name, args in [
        ("click", {}), ("type", {"ref": 1, "text": "x"}), ("select", {"ref": 1, "option": "x"}),
        ("press", {}), ("scroll", {"direction": "down"}), ("click_xy", {"x": 1, "y": 1})]
        for key in {"click": ["ref"], "type": ["ref", "text"], "select": ["ref", "option"], "press": ["key"],
                    "scroll": ["direction", "ref"], "click_xy": ["x", "y"]}[name]]
    obs, reward, terminated, truncated, info = login.step(calls(*pairs))
    assert all(isinstance(m["content"], str) for m in obs)
    json.dumps(obs)
