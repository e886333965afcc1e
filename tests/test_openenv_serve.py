"""`agenthub serve` speaks OpenEnv: OpenEnv's own client (openenv-core from PyPI) and its
own runtime validator drive an agenthub env unchanged, over a real server (a thread, or
`agenthub serve` as a subprocess), with real WebSockets. Skips when openenv-core is not
installed (`pip install 'agenthub[openenv]'`)."""

import json
import os
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

import agenthub
from agenthub.server import EnvServer, ServerThread
from server_process import served  # noqa: F401  (a fixture)

openenv_core = pytest.importorskip("openenv.core", reason="openenv-core is not installed (agenthub[openenv])")
from openenv.cli._validation import validate_running_environment  # noqa: E402
from openenv.core import GenericEnvClient  # noqa: E402

ENV_ID = "tools/guess-number-v0"
EXAMPLES = int(os.environ.get("AGENTHUB_HYPOTHESIS_EXAMPLES", "25"))


def as_openenv_action(action):
    """An agenthub action (text or assistant message) as this server's OpenEnv action."""
    if isinstance(action, str):
        return {"content": action}
    return {"content": action.get("content") or "", "tool_calls": action["tool_calls"]}


@pytest.fixture(scope="module")
def url():
    with ServerThread(EnvServer(ENV_ID, max_sessions=4)) as u:
        yield u


def test_openenv_runtime_validator_passes_on_agenthub_serve(served):  # noqa: F811
    url = served()
    report = validate_running_environment(url)
    failed = [c for c in report["criteria"] if not c["passed"]]
    assert report["passed"] and not failed, failed
    assert report["mode"] == "simulation"
    schema = httpx.get(url + "/schema").json()
    assert schema["env_id"] == ENV_ID and schema["action"]["title"] == "AgentHubAction"  # both protocols' keys
    assert httpx.get(url + "/health").json()["status"] == "healthy"


@pytest.mark.parametrize("seed", [7, 11])
def test_openenv_client_plays_the_oracle_episode_as_in_process(url, seed):
    local = agenthub.make(ENV_ID)
    obs, info = local.reset(seed=seed)
    with GenericEnvClient(base_url=url).sync() as env:
        first = env.reset(seed=seed)
        assert first.observation["messages"] == obs and first.reward is None and not first.done
        assert first.observation["info"]["task_id"] == info["task_id"]
        assert first.observation["tools"] == local.tools
        actions = local.oracle_actions()
        for i, action in enumerate(actions):
            want = local.step(action)
            got = env.step(as_openenv_action(action))
            assert got.observation["messages"] == want[0]
            assert got.reward == pytest.approx(want[1]) and got.done == (want[2] or want[3])
        assert got.done and got.observation["info"]["success"] is True
        state = env.state()
        assert state["step_count"] == len(actions) and state["done"] and state["task_id"] == info["task_id"]
    local.close()


def test_plain_text_and_malformed_tool_calls_are_env_observations(url):
    """Actions that fit the schema but are malformed for the env: the env's error
    observation, counted, and the episode goes on (the malformed-action contract)."""
    bad_calls = [
        [{"id": "a", "type": "function", "function": {"name": "shout", "arguments": "{}"}}],  # unknown tool
        [{"id": "b", "type": "function", "function": {"name": "guess", "arguments": "{not json"}}],
        [{"id": "c", "type": "function", "function": {"name": "guess"}}],  # no arguments at all
    ]
    with GenericEnvClient(base_url=url).sync() as env:
        env.reset(seed=3)
        for i, calls in enumerate(bad_calls, 1):
            r = env.step({"content": "", "tool_calls": calls})
            assert r.reward == 0 and not r.done
            assert r.observation["messages"][0]["content"].startswith("Error:")
            assert r.observation["info"]["malformed_actions"] == i
        r = env.step({"content": "32"})
        assert r.observation["messages"][0]["content"].startswith("32: ")


@pytest.mark.parametrize("action", [
    {"text": "32"},                                 # a field the schema does not have
    {"content": 32},                                # content must be a string
    {"content": "", "tool_calls": "guess 32"},      # tool_calls must be a list
])
def test_off_schema_actions_are_openenv_validation_errors(url, action):
    with GenericEnvClient(base_url=url).sync() as env:
        env.reset(seed=3)
        with pytest.raises(RuntimeError, match="VALIDATION_ERROR"):
            env.step(action)
        assert env.step({"content": "32"}).observation["messages"][0]["content"].startswith("32: ")


@settings(derandomize=True, max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frame=st.one_of(
    st.text(max_size=40),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                 lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
                 max_leaves=8).map(json.dumps),
    st.fixed_dictionaries({"type": st.sampled_from(["reset", "step", "state", "mcp", "nope"]),
                           "data": st.one_of(st.none(), st.integers(), st.text(max_size=5),
                                             st.dictionaries(st.sampled_from(["seed", "content", "tool_calls",
                                                                              "episode_id", "x"]),
                                                             st.one_of(st.integers(), st.text(max_size=5),
                                                                       st.none(), st.lists(st.integers())),
                                                             max_size=3))}).map(json.dumps)))
def test_any_frame_is_answered_and_the_session_goes_on(url, frame):
    with connect(url.replace("http://", "ws://") + "/ws", open_timeout=10) as ws:
        ws.send(frame)
        answer = json.loads(ws.recv(timeout=30))
        assert answer["type"] in ("observation", "state", "error", "mcp")
        if answer["type"] == "error":
            assert answer["data"]["code"] in ("INVALID_JSON", "UNKNOWN_TYPE", "VALIDATION_ERROR", "EXECUTION_ERROR")
        ws.send(json.dumps({"type": "reset", "data": {"seed": 1}}))
        assert json.loads(ws.recv(timeout=30))["type"] == "observation"


def test_http_routes_are_stateless_fresh_episodes(url):
    local = agenthub.make(ENV_ID)
    obs, _ = local.reset(seed=5)
    reset = httpx.post(url + "/reset", json={"seed": 5}).json()
    assert reset["observation"]["messages"] == obs and reset["done"] is False
    step = httpx.post(url + "/step", json={"action": {"content": "40"}, "seed": 5}).json()
    assert step["observation"]["messages"] == local.step("40")[0]
    assert httpx.post(url + "/step", json={"action": {"words": "40"}}).status_code == 422
    assert httpx.post(url + "/step", content=b"{nope").status_code == 422
    assert httpx.post(url + "/reset", json={"seed": -1}).status_code == 422  # OpenEnv: seed >= 0
    assert httpx.post(url + "/reset", json={"episode_id": 5}).status_code == 422
    assert httpx.get(url + "/state").json()["step_count"] == 0
    assert httpx.get(url + "/metadata").json()["name"] == ENV_ID
    listed = httpx.post(url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).json()
    assert [t["name"] for t in listed["result"]["tools"]] == ["guess"]
    assert httpx.post(url + "/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/call"}).json()["error"]
    local.close()


def test_openenv_sessions_share_the_session_cap_with_agenthub_sessions():
    server = EnvServer(ENV_ID, max_sessions=1)
    with ServerThread(server) as u:
        remote = agenthub.RemoteEnv(u)  # an agenthub session holds the one slot
        with connect(u.replace("http://", "ws://") + "/ws", open_timeout=10) as ws:
            answer = json.loads(ws.recv(timeout=10))
            assert answer["type"] == "error" and answer["data"]["code"] == "CAPACITY_REACHED"
        remote.close()
        with GenericEnvClient(base_url=u).sync() as env:
            assert env.reset(seed=1).observation["messages"]
            assert server.health()["sessions"] == 1
        deadline = time.monotonic() + 10
        while server.health()["sessions"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.health()["sessions"] == 0


def test_a_token_server_refuses_openenv_requests_without_it():
    with ServerThread(EnvServer(ENV_ID, token="s3cret-token-value")) as u:
        assert httpx.post(u + "/reset", json={}).status_code == 401
        assert httpx.get(u + "/schema").status_code == 401
        with pytest.raises(ConnectionError, match="401"):
            with GenericEnvClient(base_url=u).sync() as env:
                env.reset()
        ok = httpx.post(u + "/reset", json={"seed": 1}, headers={"Authorization": "Bearer s3cret-token-value"})
        assert ok.status_code == 200 and ok.json()["observation"]["messages"]


class NapEnv(agenthub.Env):
    """Sleeps for the number of seconds its action says; a broken one on "boom"."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return [{"role": "user", "content": "nap?"}], {}

    def step(self, action):
        if action.text == "boom":
            raise KeyError("boom")
        time.sleep(float(action.text))
        return [{"role": "user", "content": "rested"}], 0.0, False, False, {}


agenthub.register("testopenenv/nap-v0", entry_point=NapEnv, max_turns=5)


def test_env_errors_and_op_timeouts_reach_openenv_clients_as_errors():
    server = EnvServer("testopenenv/nap-v0", op_timeout=0.5)
    with ServerThread(server) as u:
        with connect(u.replace("http://", "ws://") + "/ws", open_timeout=10) as ws:
            ws.send(json.dumps({"type": "reset", "data": {}}))
            assert json.loads(ws.recv(timeout=10))["type"] == "observation"
            ws.send(json.dumps({"type": "step", "data": {"content": "boom"}}))
            error = json.loads(ws.recv(timeout=10))["data"]
            assert error["code"] == "EXECUTION_ERROR" and "KeyError" in error["message"]
            ws.send(json.dumps({"type": "step", "data": {"content": "0"}}))  # the session goes on
            assert json.loads(ws.recv(timeout=10))["data"]["observation"]["messages"][0]["content"] == "rested"
            ws.send(json.dumps({"type": "step", "data": {"content": "2"}}))
            error = json.loads(ws.recv(timeout=10))["data"]
            assert error["code"] == "EXECUTION_ERROR" and "0.5s" in error["message"]
            with pytest.raises(Exception) as closed:
                ws.recv(timeout=10)
            assert getattr(getattr(closed.value, "rcvd", None), "code", None) == 4001
        assert server.health()["timed_out"] == 1
        deadline = time.monotonic() + 10
        while server.health()["sessions"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.health()["sessions"] == 0
