"""Any OpenAI-compatible chat server (`openai:BASE_URL#MODEL`): vLLM, SGLang, llama.cpp,
or a hosted API. The key, if one is needed, comes from OPENAI_API_KEY.

The conversation is sent in OpenAI's format exactly (`request_messages`): the keys the
API defines, content as text, each tool call with its id and JSON-text arguments, and
reasoning (which agenthub keeps on the turn) left out, as servers expect. A reply's
`reasoning_content` / `reasoning` is kept as the turn's `reasoning`. `tool_parser` names
how the env reads tool calls that a server without a tool parser leaves in the text.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx

from agenthub.agents.base import Context
from agenthub.errors import AgentHubError
from agenthub.tool_parsers import get_tool_parser
from agenthub.types import Message, text_of

_MESSAGE_KEYS = {"system": ("name",), "user": ("name",), "assistant": ("name", "tool_calls"),
                 "tool": ("tool_call_id",)}


def request_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """`messages` as the Chat Completions API takes them: only its keys, content as text
    (null content becomes ""), tool-call arguments as JSON text."""
    out = []
    for m in messages:
        role = m.get("role", "user")
        sent: dict[str, Any] = {"role": role, "content": text_of(m)}
        for key in _MESSAGE_KEYS.get(role, ()):
            if m.get(key):  # type: ignore[misc]
                sent[key] = m[key]  # type: ignore[literal-required]
        if "tool_calls" in sent:
            sent["tool_calls"] = [{"id": c["id"], "type": "function", "function": {
                "name": c["function"]["name"], "arguments": _arguments_text(c["function"].get("arguments"))}}
                for c in sent["tool_calls"]]
        out.append(sent)
    return out


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments if arguments is not None else {})


class OpenAIAgent:
    def __init__(self, base_url: str, model: str, temperature: float = 0.0, max_tokens: int = 512,
                 timeout: float = 120.0, tool_parser: str | None = None):
        self.base_url, self.model = base_url.rstrip("/"), model
        self.name = f"openai:{self.base_url}#{model}"
        self.params = {"temperature": temperature, "max_tokens": max_tokens}
        get_tool_parser(tool_parser)  # an unknown name fails here, not mid-episode
        self.tool_parser = tool_parser
        key = os.environ.get("OPENAI_API_KEY")
        self.client = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {key}"} if key else {})

    def request(self, messages: list[Message], tools: list[Any]) -> dict[str, Any]:
        """The JSON body of the chat-completions request for this conversation."""
        body: dict[str, Any] = {"model": self.model, "messages": request_messages(messages), **self.params}
        if tools:
            body["tools"] = tools
        return body

    def act(self, messages: list[Message], ctx: Context) -> Message:
        try:
            # ASCII-escaped JSON: an env's text may hold a lone surrogate, which UTF-8 cannot carry
            r = self.client.post(f"{self.base_url}/chat/completions", content=json.dumps(
                self.request(messages, ctx.env.tools)).encode(), headers={"Content-Type": "application/json"})
            r.raise_for_status()
            msg = r.json()["choices"][0]["message"]
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as e:
            raise AgentHubError(f"chat server {self.base_url} failed: {type(e).__name__}: {e}") from e
        if not isinstance(msg, dict):
            raise AgentHubError(f"chat server {self.base_url} sent a message that is not an object: {msg!r:.80}")
        out: Message = {"role": "assistant", "content": msg.get("content")}
        if msg.get("tool_calls"):
            out["tool_calls"] = msg["tool_calls"]
        reasoning = msg.get("reasoning_content") or msg.get("reasoning")
        if reasoning:
            out["reasoning"] = reasoning  # type: ignore[typeddict-unknown-key]
        return out
