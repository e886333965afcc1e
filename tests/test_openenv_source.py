"""`openenv:URL` env source: agenthub plays episodes on any OpenEnv server. The server
here is OpenEnv's own (openenv-core from PyPI: its `Environment`, `Action`,
`Observation` and `create_app`, served by uvicorn on a real port), running a small
echo-and-count env written against OpenEnv's documented interface; and `agenthub serve`
itself, reached through the same source. Skips when openenv-core is not installed."""

import json
import threading
import time

import pytest
from gymnasium.utils.env_checker import check_env
from pydantic import Field

import agenthub
from agenthub.errors import AgentHubError
from agenthub.evaluation import evaluate
from agenthub.server import EnvServer, ServerThread, bind_socket, url_of

pytest.importorskip("openenv.core", reason="openenv-core is not installed (agenthub[openenv])")
import uvicorn  # noqa: E402
from openenv.core.env_server import Environment, create_app  # noqa: E402
from openenv.core.env_server.types import Action, Observation, State  # noqa: E402


class ShoutAction(Action):
    message: str = Field(min_length=1, description="what to shout")


class ShoutObservation(Observation):
    echoed: str = ""
    left: int = 0


class ShoutEnv(Environment):
    """Echoes each message in upper case; the episode ends after `3 + seed % 2` shouts,
    rewarded 1.0 when the last shout was "DONE", else 0.25."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self):
        super().__init__()
        self._state = State()
        self.left = 3

    def reset(self, seed=None, episode_id=None, **kwargs):
        self.left = 3 + (seed or 0) % 2
        self._state = State(episode_id=episode_id, step_count=0)
        return ShoutObservation(echoed="", left=self.left)

    def step(self, action, timeout_s=None, **kwargs):
        self.left -= 1
        self._state.step_count += 1
        done = self.left <= 0
        reward = (1.0 if action.message == "done" else 0.25) if done else 0.0
        return ShoutObservation(echoed=action.message.upper(), left=self.left, done=done, reward=reward)

    @property
    def state(self):
        return self._state


@pytest.fixture(scope="module")
def openenv_url():
    app = create_app(ShoutEnv, ShoutAction, ShoutObservation, env_name="shout", max_concurrent_envs=8)
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield url_of(sock)
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


def call(name, args, cid="c1"):
    return {"role": "assistant", "content": "",
            "tool_calls": [{"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}


def test_an_openenv_server_plays_as_an_agenthub_env(openenv_url):
    env = agenthub.make("openenv:" + openenv_url)
    try:
        assert [t["function"]["name"] for t in env.tools] == ["act"]
        assert env.tools[0]["function"]["parameters"]["properties"]["message"]["type"] == "string"
        obs, info = env.reset(seed=1)  # 4 shouts
        assert json.loads(obs[0]["content"]) == {"echoed": "", "left": 4} and info["observation"]["left"] == 4
        # the same kind of action in its three forms: plain text (the one string field),
        # a JSON object, and a call to the `act` tool
        obs, reward, terminated, _, info = env.step("hello")
        assert json.loads(obs[0]["content"])["echoed"] == "HELLO" and obs[0]["role"] == "user"
        obs, *_ = env.step('{"message": "json"}')
        assert json.loads(obs[0]["content"])["echoed"] == "JSON"
        obs, *_ = env.step(call("act", {"message": "tool"}))
        assert obs[0] == {"role": "tool", "tool_call_id": "c1", "content": json.dumps({"echoed": "TOOL", "left": 1})}
        assert env.unwrapped.state()["step_count"] == 3
        obs, reward, terminated, truncated, info = env.step("done")
        assert terminated and not truncated and reward == 1.0
        assert info["success"] is True and info["outcome"] == 1.0
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


@pytest.mark.parametrize("action, why", [
    (call("act", {"message": ""}), "rejected"),          # fails the server's own validation (min_length)
    ('{"message": "x", "volume": 11}', "rejected"),       # a field the action does not have
    (call("act", {"volume": 11}), "missing"),            # no `message`: the tool's schema says so
    (call("shout", {"message": "x"}), "Error"),          # a tool the env does not have
    ("", "Error"),                                       # empty text
])
def test_malformed_actions_are_error_observations_and_the_episode_goes_on(openenv_url, action, why):
    env = agenthub.make("openenv:" + openenv_url)
    try:
        env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(action)
        assert why in obs[0]["content"] and obs[0]["content"].startswith("Error:")
        assert reward == 0 and not terminated and not truncated
        assert set(info["reward_components"]) & {"malformed_action", "openenv_error"}
        obs, *_ = env.step("still here")
        assert json.loads(obs[0]["content"])["echoed"] == "STILL HERE"
    finally:
        env.close()


def test_eval_runs_episodes_against_an_openenv_server(openenv_url, tmp_path):
    class Shouter:
        name = "shouter"

        def act(self, messages, ctx):
            return "done" if json.loads(messages[-1]["content"])["left"] == 1 else "again"

    target = "openenv:" + openenv_url
    results = evaluate(target, Shouter(), tmp_path, episodes=2, seed=0, concurrency=2, progress=False)
    assert results["episodes"] == 2 and results["success_rate"] == 1.0 and results["errors"] == 0
    trajectories = agenthub.read_trajectories(tmp_path / "trajectories.jsonl")
    assert {t.env_id for t in trajectories} == {target}
    assert sorted(len(t.turns) for t in trajectories) == [3, 4]  # seeds 0 and 1 reached the server


def test_agenthub_serve_through_openenv_plays_like_the_env_itself():
    """agenthub -> OpenEnv protocol -> agenthub: messages, tools, rewards, info unchanged."""
    with ServerThread(EnvServer("tools/guess-number-v0")) as url:
        local, remote = agenthub.make("tools/guess-number-v0"), agenthub.make("openenv:" + url)
        try:
            assert remote.reset(seed=9)[0] == local.reset(seed=9)[0] and remote.tools == local.tools
            for action in [*local.oracle_actions()[:2], "not a number", call("guess", {"n": 1})]:
                want, got = local.step(action), remote.step(action)
                assert got[0] == want[0] and got[1:4] == pytest.approx(want[1:4])
                assert got[4]["reward_components"] == want[4]["reward_components"]
            check_env(remote, skip_render_check=True)
            check_env(remote.unwrapped, skip_render_check=True)
        finally:
            local.close()
            remote.close()


@pytest.mark.parametrize("bad", ["openenv:", "openenv:ftp://x", "openenv:127.0.0.1:1"])
def test_a_bad_openenv_url_is_one_clear_error(bad):
    with pytest.raises(AgentHubError, match="openenv:http://HOST:PORT"):
        agenthub.make(bad)


def test_an_unreachable_openenv_server_is_one_clear_error():
    sock = bind_socket("127.0.0.1", 0)
    url = url_of(sock)
    sock.close()  # nothing listens there now
    with pytest.raises(AgentHubError, match="cannot read the schema"):
        agenthub.make("openenv:" + url)


def test_cli_eval_of_an_openenv_server(openenv_url, tmp_path):
    """`agenthub eval openenv:URL` as a user types it (a subprocess), and its bad-URL line."""
    import subprocess
    import sys
    run = [sys.executable, "-m", "agenthub", "eval"]
    r = subprocess.run([*run, "openenv:" + openenv_url, "--agent", "random", "--episodes", "2", "--out",
                        str(tmp_path), "--json"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout[r.stdout.index("{"):])
    assert results["episodes"] == 2 and results["errors"] == 0
    assert results["stop_reasons"] == {"terminated": 2}  # the server ended both episodes
    r = subprocess.run([*run, "openenv:nowhere", "--agent", "random"], capture_output=True, text=True, timeout=180)
    assert r.returncode != 0 and "openenv:http://HOST:PORT" in r.stderr and "Traceback" not in r.stderr
