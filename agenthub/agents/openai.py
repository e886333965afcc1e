"""Any OpenAI-compatible chat server (`openai:BASE_URL#MODEL`): vLLM, SGLang, llama.cpp,
or a hosted API. The key, if one is needed, comes from OPENAI_API_KEY."""

from __future__ import annotations

import os
from typing import Any

import httpx

from agenthub.agents.base import Context
from agenthub.errors import AgentHubError
from agenthub.types import Message


class OpenAIAgent:
    def __init__(self, base_url: str, model: str, temperature: float = 0.0, max_tokens: int = 512,
                 timeout: float = 120.0):
        self.base_url, self.model = base_url.rstrip("/"), model
        self.name = f"openai:{self.base_url}#{model}"
        self.params = {"temperature": temperature, "max_tokens": max_tokens}
        key = os.environ.get("OPENAI_API_KEY")
        self.client = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {key}"} if key else {})

    def act(self, messages: list[Message], ctx: Context) -> Message:
        body: dict[str, Any] = {"model": self.model, "messages": messages, **self.params}
        if ctx.env.tools:
            body["tools"] = ctx.env.tools
        try:
            r = self.client.post(f"{self.base_url}/chat/completions", json=body)
            r.raise_for_status()
            msg = r.json()["choices"][0]["message"]
        except httpx.HTTPError as e:
            raise AgentHubError(f"chat server {self.base_url} failed: {e}") from e
        out: Message = {"role": "assistant", "content": msg.get("content") or ""}
        if msg.get("tool_calls"):
            out["tool_calls"] = msg["tool_calls"]
        return out
