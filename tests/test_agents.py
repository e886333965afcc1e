"""Agents from their CLI specs; the OpenAI-compatible agent against a real local chat
server started by the test."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import agenthub
from agenthub.agents import load_agent
from agenthub.agents.base import Context
from agenthub.agents.openai import request_messages
from agenthub.errors import AgentHubError
from agenthub.evaluation import evaluate
from agenthub.types import read_trajectories


class BisectingChatServer(BaseHTTPRequestHandler):
    """An OpenAI-style /v1/chat/completions endpoint whose 'model' bisects by reading
    the tool results in the conversation, answering with tool_calls."""

    requests: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        lo, hi = 1, 64
        for m in body["messages"]:
            found = re.match(r"(\d+): (higher|lower)", str(m.get("content")))
            if m["role"] == "tool" and found:
                n = int(found.group(1))
                lo, hi = (n + 1, hi) if found.group(2) == "higher" else (lo, n - 1)
        call = {"id": f"c{len(body['messages'])}", "type": "function",
                "function": {"name": "guess", "arguments": json.dumps({"number": (lo + hi) // 2})}}
        reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                              "finish_reason": "tool_calls"}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def chat_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), BisectingChatServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_openai_agent_plays_through_a_chat_server(chat_server, tmp_path):
    BisectingChatServer.requests.clear()
    res = evaluate("tools/guess-number-v0", f"openai:{chat_server}#bisect-1", tmp_path, episodes=4,
                   progress=False)
    assert res["success_rate"] == 1.0 and res["agent"] == f"openai:{chat_server}#bisect-1"
    first = BisectingChatServer.requests[0]
    assert first["model"] == "bisect-1" and first["tools"][0]["function"]["name"] == "guess"
    # the conversation sent back carries the tool results in OpenAI format
    later = next(r["messages"] for r in BisectingChatServer.requests if len(r["messages"]) > 2)
    assert later[-1]["role"] == "tool" and later[-2]["tool_calls"]


def test_openai_agent_unreachable_server_is_an_episode_error(tmp_path):
    res = evaluate("tools/guess-number-v0", "openai:http://127.0.0.1:9/v1#m", tmp_path, episodes=1,
                   progress=False)
    assert res["errors"] == 1 and res["per_task"][0]["stop_reasons"] == {"error": 1}


def test_agent_specs():
    assert load_agent("random").name == "random"
    assert load_agent("oracle").name == "oracle"
    assert load_agent("agenthub.agents.random:RandomAgent").name == "random"  # a class: instantiated
    for bad in ("", "gpt", "hf:", "openai:http://x"):
        with pytest.raises(AgentHubError, match="bad agent spec"):
            load_agent(bad)


def test_openai_request_is_openai_format_and_reply_keeps_reasoning(tmp_path):
    """Saved turns carry `reasoning` and may have null or list content: the request holds
    only the API's keys, text content and JSON-text arguments; a reply's
    `reasoning_content` lands on the turn as `reasoning`."""
    messages = [{"role": "user", "content": [{"type": "text", "text": "go"}], "name": "u"},
                {"role": "assistant", "content": None, "reasoning": "hidden", "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "guess", "arguments": {"number": 3}}}]},
                {"role": "tool", "tool_call_id": "a", "content": "3: higher", "name": "guess"}]
    assert request_messages(messages) == [
        {"role": "user", "content": "go", "name": "u"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "guess", "arguments": '{"number": 3}'}}]},
        {"role": "tool", "content": "3: higher", "tool_call_id": "a"}]

    class ReasoningServer(BisectingChatServer):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            reply = {"choices": [{"message": {"role": "assistant", "content": None,
                                              "reasoning_content": "bisect: 32", "tool_calls": [
                                                  {"id": "r1", "type": "function", "function": {
                                                      "name": "guess", "arguments": '{"number": 32}'}}]}}]}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), ReasoningServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        evaluate("tools/guess-number-v0", f"openai:{url}#m", tmp_path, episodes=1, progress=False)
        # an env's text with half an emoji still goes out (JSON-escaped)
        agent = load_agent(f"openai:{url}#m")
        env = agenthub.make("tools/guess-number-v0")
        assert agent.act([{"role": "user", "content": "page \ud83d"}], Context(env, {}, 0)).message["reasoning"]
    finally:
        server.shutdown()
    [t] = read_trajectories(tmp_path / "trajectories.jsonl")
    first = t.turns[0].action
    assert first["reasoning"] == "bisect: 32" and first["content"] == "" and first["tool_calls"][0]["id"] == "r1"


def test_openai_spec_options_pick_the_tool_parser():
    agent = load_agent("openai:http://127.0.0.1:9/v1#some-model?tool_parser=mistral&temperature=0.7")
    assert agent.model == "some-model" and agent.tool_parser == "mistral" and agent.params["temperature"] == 0.7
    for bad, message in (("tool_parser=qwen9", "unknown tool parser"), ("colour=red", "unknown option"),
                         ("max_tokens=many", "not a valid int")):
        with pytest.raises(AgentHubError, match=message):
            load_agent(f"openai:http://127.0.0.1:9/v1#m?{bad}")
