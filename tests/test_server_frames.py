"""Whatever a client sends over its WebSocket, a real `agenthub serve` answers it and
the session goes on: non-JSON text, JSON that is not an object, every field with a
wrong type, ids too large to echo, nesting too deep to decode, binary frames. A frame
over --max-frame-bytes closes the connection with 1009 (message too big) and the server
keeps serving. Hypothesis drives the frames (fixed seed; more examples with
AGENTHUB_HYPOTHESIS_EXAMPLES)."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from server_process import start_server, stop_server

EXAMPLES = int(os.environ.get("AGENTHUB_HYPOTHESIS_EXAMPLES", "60"))
SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MAX_FRAME = 1 << 20
FIELDS = {"reset": ["seed", "options"], "step": ["action"], "oracle_actions": [], "ping": []}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def wrong_for(field: str):
    """JSON values of a type the field never takes."""
    valid = {
        "id": lambda v: v is None or (type(v) is int and abs(v) < 2**63) or (type(v) is str and len(v) <= 256),
        "op": lambda v: isinstance(v, str) and v in FIELDS,
        "seed": lambda v: v is None or (type(v) is int and 0 <= v < 2**64),
        "options": lambda v: v is None or isinstance(v, dict),
        "action": lambda v: isinstance(v, (str, dict)),
    }[field]
    extremes = st.sampled_from([2**63, -2**63, 2**64, -1, 10**40, "x" * 257, ["step"], {"op": "step"}, 1.5, True])
    return (json_values | extremes).filter(lambda v: not valid(v))


@pytest.fixture(scope="module")
def url():
    proc, url = start_server("--max-frame-bytes", str(MAX_FRAME), env={"AGENTHUB_SERVER_TOKEN": None})
    yield url.replace("http://", "ws://") + "/session"
    stop_server(proc)


@pytest.fixture(scope="module")
def ws(url):
    with connect(url, max_size=None) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "hello"
        yield ws


def exchange(ws, frame: str | bytes) -> dict:
    """Send one frame; the answer, after checking the session still answers a ping."""
    ws.send(frame)
    answer = json.loads(ws.recv(timeout=30))
    ws.send(json.dumps({"id": "after", "op": "ping"}))
    assert json.loads(ws.recv(timeout=30)) == {"id": "after", "ok": True, "result": "pong"}
    return answer


def assert_bad_request(answer: dict, rid=None) -> None:
    assert answer["ok"] is False and answer["error"]["kind"] == "bad_request", answer
    assert answer["id"] == rid
    assert answer["error"]["message"] and len(answer["error"]["message"]) < 400


@pytest.mark.parametrize("frame, says", [
    ('{"id": 1, "op": ["step"]}', "op must be one of reset, step, oracle_actions, ping; got an array"),
    ('{"id": 1, "op": "step", "action": 7}', "action must be a string or an assistant message object"),
    ('{"id": 1, "op": "reset", "seed": "7"}', "seed must be null or an integer"),
    ('{"id": 1, "op": "reset", "options": []}', "options must be null or an object"),
    ('{"id": 1, "op": "ping", "action": "x"}', "op 'ping' takes no field 'action'"),
])
def test_the_issue_example_and_variants_answer_bad_request(ws, frame, says):
    answer = exchange(ws, frame)
    assert_bad_request(answer, rid=1)
    assert says in answer["error"]["message"]


@pytest.mark.parametrize("frame, says", [
    (b'{"id": 1, "op": "ping"}', "binary frames are not accepted"),
    (b"\x00\xff" * 100, "binary frames are not accepted"),
    ("[" * 100_000 + "]" * 100_000, "not JSON"),
    ('{"a":' * 50_000, "not JSON"),
    ('{"id": ' + "9" * 5000 + ', "op": "ping"}', "not JSON"),  # longer than int() takes
    ('{"id": ' + "9" * 30 + ', "op": "ping"}', "id must be"),
    ('{"id": [1], "op": "ping"}', "id must be"),
    ("", "not JSON"),
    ("null", "not null"),
    ('"op"', "not a string"),
])
def test_frames_that_are_not_requests(ws, frame, says):
    answer = exchange(ws, frame)
    assert_bad_request(answer)
    assert says in answer["error"]["message"]


@SETTINGS
@given(data=st.data())
def test_a_field_of_the_wrong_type_is_a_bad_request(ws, data):
    op = data.draw(st.sampled_from(sorted(FIELDS)))
    request = {"id": 5, "op": op}
    if op == "step":
        request["action"] = "32"
    field = data.draw(st.sampled_from(["id", "op", *FIELDS[op]]))
    request[field] = data.draw(wrong_for(field))
    answer = exchange(ws, json.dumps(request))
    assert_bad_request(answer, rid=None if field == "id" else 5)


@SETTINGS
@given(value=json_values)
def test_json_that_is_not_an_object_is_a_bad_request(ws, value):
    if isinstance(value, dict):
        value = [value]
    assert_bad_request(exchange(ws, json.dumps(value)))


@SETTINGS
@given(text=st.text(max_size=200) | st.binary(max_size=200))
def test_any_text_or_bytes_is_answered(ws, text):
    answer = exchange(ws, text)
    assert answer["ok"] is True or answer["error"]["kind"] in ("bad_request", "env_error"), answer


@SETTINGS
@given(request=st.fixed_dictionaries({"id": st.integers(0, 2**62), "op": st.just("step"), "action": json_values}))
def test_valid_shapes_with_garbage_inside_never_break_the_session(ws, request):
    answer = exchange(ws, json.dumps(request))
    assert answer["id"] == request["id"] or answer["error"]["kind"] == "bad_request"
    if answer["ok"]:
        assert len(answer["result"]) == 5  # a step result: the env judged the action


def test_an_oversized_frame_closes_with_1009_and_the_server_goes_on(url):
    with connect(url, max_size=None) as ws:
        ws.recv(timeout=30)
        ws.send(json.dumps({"id": 1, "op": "step", "action": "x" * (MAX_FRAME + 1)}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    with connect(url, max_size=None) as ws:
        ws.recv(timeout=30)
        ws.send(json.dumps({"id": 2, "op": "step", "action": "x" * (MAX_FRAME - 100)}))  # just under: answered
        assert json.loads(ws.recv(timeout=30))["id"] == 2
