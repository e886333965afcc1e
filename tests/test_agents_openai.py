"""The `openai:` agent against a real local HTTP server started in the test: retries on
429 / 5xx / timeouts / dropped connections with `Retry-After` honoured, request options
(from the spec, the constructor and `agenthub eval --agent-option`), reasoning kept on
the turn, and token usage recorded per turn and per episode (issue 17, item 5)."""

from __future__ import annotations

import email.utils
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

import agenthub
from agenthub.agents import load_agent
from agenthub.agents.base import Context
from agenthub.agents.openai import OpenAIAgent, retry_after, token_usage
from agenthub.cli import main
from agenthub.cli.eval import agent_options
from agenthub.errors import AgentHubError
from agenthub.evaluation import evaluate
from agenthub.types import read_trajectories

USAGE = {"prompt_tokens": 40, "completion_tokens": 7, "total_tokens": 47,
         "completion_tokens_details": {"reasoning_tokens": 5}}


class ScriptedServer(BaseHTTPRequestHandler):
    """/v1/chat/completions that plays `script` (one entry per request: an HTTP status
    with headers, "sleep:S" to stall S seconds, or "drop" to hang up without answering),
    then answers every request with `reply`. Each request is recorded with its arrival
    time, headers and body."""

    script: list = []
    reply: dict = {}
    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        cls.seen.append((time.monotonic(), dict(self.headers), body))
        step = cls.script.pop(0) if cls.script else None
        if step == "drop":
            self.close_connection = True
            return
        if isinstance(step, str) and step.startswith("sleep:"):
            time.sleep(float(step.split(":")[1]))
            step = None
        status, headers = step if step else (200, {})
        data = json.dumps(cls.reply if status == 200 else
                          {"error": {"message": f"scripted {status}", "type": "test"}}).encode()
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", **headers}.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout test)
            pass

    def log_message(self, *args):
        pass


def guess_reply(**message):
    call = {"id": "c1", "type": "function", "function": {"name": "guess", "arguments": '{"number": 32}'}}
    return {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [call], **message}}], "usage": USAGE}


@pytest.fixture
def server():
    ScriptedServer.script, ScriptedServer.seen, ScriptedServer.reply = [], [], guess_reply()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


@pytest.fixture(scope="module")
def env():
    made = agenthub.make("tools/guess-number-v0")
    made.reset(seed=0)
    yield made
    made.close()


def act(agent, env):
    return agent.act([{"role": "user", "content": "guess"}], Context(env, {}, 0))


def gaps():
    times = [t for t, _, _ in ScriptedServer.seen]
    return [b - a for a, b in zip(times, times[1:])]


def test_429_with_retry_after_then_500_then_success(server, env):
    ScriptedServer.script = [(429, {"Retry-After": "1"}), (500, {})]
    agent = OpenAIAgent(server, "m", backoff=0.2)
    reply = act(agent, env)
    assert reply.message["tool_calls"][0]["function"]["name"] == "guess"
    assert len(ScriptedServer.seen) == 3
    first, second = gaps()
    assert first >= 1.0  # the server's Retry-After, not the 0.1-0.2 s backoff
    assert 0.1 <= second < 1.0  # backoff 0.2 * 2**1 = 0.4 s, half of it jittered
    # the same body each time
    assert ScriptedServer.seen[0][2] == ScriptedServer.seen[2][2]


@pytest.mark.parametrize("headers, least", [
    (lambda: {"Retry-After": email.utils.formatdate(time.time() + 2, usegmt=True)}, 0.5),  # an HTTP date (whole s)
    (lambda: {"retry-after-ms": "600"}, 0.6),
    (lambda: {}, 0.05),  # no header: backoff 0.1 s with jitter
])
def test_every_retryable_kind_is_retried(server, env, headers, least):
    ScriptedServer.script = [(503, headers()), (429, {}), (408, {})]
    act(OpenAIAgent(server, "m", backoff=0.1), env)
    assert len(ScriptedServer.seen) == 4
    assert gaps()[0] >= least


def test_timeouts_and_dropped_connections_are_retried(server, env):
    ScriptedServer.script = ["sleep:1.5", "drop"]
    reply = act(OpenAIAgent(server, "m", timeout=0.5, backoff=0.05), env)
    assert reply.message["tool_calls"] and len(ScriptedServer.seen) == 3


def test_retries_run_out_or_do_not_apply(server, env):
    ScriptedServer.script = [(500, {})] * 5
    with pytest.raises(AgentHubError, match=r"answered 500 after 3 attempt\(s\): scripted 500"):
        act(OpenAIAgent(server, "m", max_retries=2, backoff=0.01), env)
    assert len(ScriptedServer.seen) == 3
    # a client error is the request's fault: one attempt, the server's message shown
    ScriptedServer.script, ScriptedServer.seen = [(400, {})], []
    with pytest.raises(AgentHubError, match=r"answered 400 after 1 attempt\(s\): scripted 400"):
        act(OpenAIAgent(server, "m"), env)
    assert len(ScriptedServer.seen) == 1
    # a reply that is not a completion
    ScriptedServer.reply = {"choices": []}
    with pytest.raises(AgentHubError, match="malformed reply"):
        act(OpenAIAgent(server, "m"), env)


def test_retry_after_forms():
    h = httpx.Headers
    assert retry_after(h({"Retry-After": "3"})) == 3.0
    assert retry_after(h({"Retry-After": "0.25"})) == 0.25
    assert 9 < retry_after(h({"Retry-After": email.utils.formatdate(time.time() + 10, usegmt=True)})) <= 10
    assert retry_after(h({"Retry-After": email.utils.formatdate(time.time() - 10, usegmt=True)})) == 0.0
    assert retry_after(h({"retry-after-ms": "1500", "Retry-After": "9"})) == 1.5
    for bad in ({}, {"Retry-After": "soon"}, {"Retry-After": ""}, {"retry-after-ms": "x"}):
        assert retry_after(h(bad)) is None


def test_request_options_are_sent_only_when_given(server, env):
    act(OpenAIAgent(server, "m"), env)
    body = ScriptedServer.seen[-1][2]
    assert "max_tokens" not in body and "max_completion_tokens" not in body and body["temperature"] == 0.0
    act(OpenAIAgent(server, "m", temperature=None, max_completion_tokens=64, reasoning_effort="low",
                    tool_choice="required", extra_headers={"X-A": "b"}, extra_body={"top_k": 5}), env)
    _, headers, body = ScriptedServer.seen[-1]
    assert "temperature" not in body and "max_tokens" not in body
    assert (body["max_completion_tokens"], body["reasoning_effort"], body["tool_choice"], body["top_k"]) == \
        (64, "low", "required", 5)
    assert headers["X-A"] == "b"
    act(load_agent(f"openai:{server}#m?max_tokens=16&max_completion_tokens=8"), env)
    body = ScriptedServer.seen[-1][2]
    assert (body["max_tokens"], body["max_completion_tokens"]) == (16, 8)
    for bad, message in (({"temprature": 0.5}, "unknown openai agent option"),
                         ({"extra_headers": "X-A: b"}, "must be a JSON object"),
                         ({"max_retries": -1}, "max_retries must be"), ({"backoff": "abc"}, "backoff must be"),
                         ({"timeout": float("nan")}, "timeout must be")):
        with pytest.raises(AgentHubError, match=message):
            OpenAIAgent(server, "m", **bad)


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_reasoning_and_token_usage_land_on_the_trajectory(server, tmp_path, key):
    ScriptedServer.reply = guess_reply(**{key: "bisect: 32"})
    evaluate("tools/guess-number-v0", f"openai:{server}#m", tmp_path, episodes=1, progress=False)
    [t] = read_trajectories(tmp_path / "trajectories.jsonl")
    assert t.turns and len(t.turns) == len(ScriptedServer.seen)
    per_turn = {"prompt_tokens": 40, "completion_tokens": 7, "total_tokens": 47, "reasoning_tokens": 5}
    for turn in t.turns:
        assert turn.action["reasoning"] == "bisect: 32" and "reasoning_content" not in turn.action
        assert turn.info["token_usage"] == per_turn
    assert t.provenance["token_usage"] == {k: v * len(t.turns) for k, v in per_turn.items()}


def test_token_usage_reads_what_servers_send():
    assert token_usage(None) is None and token_usage("12") is None and token_usage({}) is None
    assert token_usage({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
                        "prompt_tokens_details": {"cached_tokens": 1}, "completion_tokens_details": None}) == \
        {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "cached_tokens": 1}
    # counts that are not integers are dropped, not summed
    assert token_usage({"prompt_tokens": "3", "completion_tokens": True, "total_tokens": 1.5}) is None


def test_agent_option_values_are_json_or_text():
    assert agent_options(["max_completion_tokens=512", "reasoning_effort=low", "temperature=null",
                          'extra_headers={"X-A": "b"}', "stop=[\"\\n\"]", "tool_choice=required", "note=a=b"]) == {
        "max_completion_tokens": 512, "reasoning_effort": "low", "temperature": None,
        "extra_headers": {"X-A": "b"}, "stop": ["\n"], "tool_choice": "required", "note": "a=b"}
    for bad in ("novalue", "=5", " =x"):
        with pytest.raises(AgentHubError, match="is not KEY=VALUE"):
            agent_options([bad])


def test_cli_agent_options_reach_the_server(server, tmp_path, capsys):
    rc = main(["eval", "tools/guess-number-v0", "--agent", f"openai:{server}#m", "--episodes", "1",
               "--out", str(tmp_path), "--json", "--agent-option", "max_completion_tokens=64",
               "--agent-option", "reasoning_effort=low", "--agent-option", "tool_choice=required",
               "--agent-option", 'extra_headers={"X-A":"b"}', "--agent-option", "temperature=0.5"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["agent"] == f"openai:{server}#m"
    _, headers, body = ScriptedServer.seen[0]
    assert (body["max_completion_tokens"], body["reasoning_effort"], body["tool_choice"], body["temperature"]) == \
        (64, "low", "required", 0.5)
    assert "max_tokens" not in body and headers["X-A"] == "b"


@pytest.mark.parametrize("agent, option, message", [
    ("openai:{server}#m", "colour=red", "unknown openai agent option"),
    ("openai:{server}#m", "bare", "is not KEY=VALUE"),
    ("random", "colour=red", "does not take option"),
])
def test_cli_bad_agent_options_are_one_line(server, tmp_path, capsys, agent, option, message):
    rc = main(["eval", "tools/guess-number-v0", "--agent", agent.format(server=server), "--episodes", "1",
               "--out", str(tmp_path), "--agent-option", option])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
