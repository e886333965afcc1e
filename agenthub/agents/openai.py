"""Any OpenAI-compatible chat server (`openai:BASE_URL#MODEL`): vLLM, SGLang, llama.cpp,
or a hosted API. The key, if one is needed, comes from OPENAI_API_KEY.

The conversation is sent in OpenAI's format exactly (`request_messages`): the keys the
API defines, content as text, each tool call with its id and JSON-text arguments, and
reasoning (which agenthub keeps on the turn) left out, as servers expect. A reply's
`reasoning_content` / `reasoning` is kept as the turn's `reasoning`. `tool_parser` names
how the env reads tool calls that a server without a tool parser leaves in the text.

Busy servers are retried (429 / 5xx / timeouts, `Retry-After` honoured, backoff with
jitter); request fields such as `max_completion_tokens`, `reasoning_effort` or
`tool_choice` come from agent options (`agenthub eval --agent-option KEY=VALUE`); each
reply's token usage goes on its turn (`info["token_usage"]`) and is summed per episode
(`provenance["token_usage"]`) by the runner.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import time
from typing import Any

import httpx

from agenthub.agents.base import Context, Reply
from agenthub.errors import AgentHubError
from agenthub.tool_parsers import get_tool_parser
from agenthub.types import Message, text_of

# Chat Completions request fields an agent option may set (the rest go in `extra_body`)
_BODY_OPTIONS = {"max_tokens", "max_completion_tokens", "reasoning_effort", "tool_choice", "parallel_tool_calls",
                 "top_p", "seed", "stop", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs",
                 "top_logprobs", "response_format", "service_tier", "user", "metadata", "store", "verbosity"}
_RETRY_STATUS = {408, 409, 429}  # and every 5xx: the server is busy, restarting or overloaded
_USAGE_KEYS = {"prompt_tokens", "completion_tokens", "total_tokens", "reasoning_tokens", "cached_tokens"}
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
    """Chat-completions client that retries what a busy server throws back.

    `options` are request fields (see `_BODY_OPTIONS`; e.g. `max_completion_tokens`,
    `reasoning_effort`, `tool_choice`): each is sent only when given and not None, so
    `max_tokens`, which reasoning models reject, goes out only when asked for.
    `temperature` defaults to 0 (reproducible evals); `temperature=None` leaves it to the
    server. `extra_headers` / `extra_body` add headers / body fields as given.

    Retries: a 408, 409, 429 or 5xx answer, a timeout or a dropped connection is tried
    again up to `max_retries` times, after the server's `Retry-After` (seconds or an HTTP
    date, at most `max_wait` s) or else an exponential backoff of `backoff * 2**attempt`
    s (capped at `max_wait`) with jitter, so concurrent episodes do not retry in step.
    Raises AgentHubError (the runner's episode error) once retries run out or on any
    other failure; the message carries the server's own error text.
    """

    def __init__(self, base_url: str, model: str, temperature: float | None = 0.0, timeout: float = 120.0,
                 tool_parser: str | None = None, max_retries: int = 3, backoff: float = 0.5,
                 max_wait: float = 60.0, extra_headers: dict[str, str] | None = None,
                 extra_body: dict[str, Any] | None = None, **options: Any):
        unknown = sorted(set(options) - _BODY_OPTIONS)
        if unknown:
            raise AgentHubError(f"unknown openai agent option(s) {', '.join(unknown)} (request fields: "
                                f"{', '.join(sorted(_BODY_OPTIONS))}; others go in extra_body={{...}})")
        for name, value in (("extra_headers", extra_headers), ("extra_body", extra_body)):
            if value is not None and not isinstance(value, dict):
                raise AgentHubError(f"openai agent option {name} must be a JSON object, not {value!r:.60}")
        if not (isinstance(max_retries, int) and max_retries >= 0):
            raise AgentHubError(f"openai agent option max_retries must be an integer >= 0, not {max_retries!r}")
        for name, value in (("timeout", timeout), ("backoff", backoff), ("max_wait", max_wait)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise AgentHubError(f"openai agent option {name} must be a number of seconds >= 0, not {value!r:.60}")
        self.base_url, self.model = base_url.rstrip("/"), model
        self.name = f"openai:{self.base_url}#{model}"
        self.params = {k: v for k, v in {"temperature": temperature, **options, **(extra_body or {})}.items()
                       if v is not None}
        get_tool_parser(tool_parser)  # an unknown name fails here, not mid-episode
        self.tool_parser = tool_parser
        self.max_retries, self.backoff, self.max_wait = max_retries, float(backoff), float(max_wait)
        key = os.environ.get("OPENAI_API_KEY")
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {}),
                   **{str(k): str(v) for k, v in (extra_headers or {}).items()}}
        self.client = httpx.Client(timeout=timeout, headers=headers)
        self._jitter = random.Random()

    def request(self, messages: list[Message], tools: list[Any]) -> dict[str, Any]:
        """The JSON body of the chat-completions request for this conversation."""
        body: dict[str, Any] = {"model": self.model, "messages": request_messages(messages), **self.params}
        if tools:
            body["tools"] = tools
        return body

    def act(self, messages: list[Message], ctx: Context) -> Reply:
        """The server's reply as the turn's message (reasoning kept as `reasoning`), with
        its token counts (`prompt_tokens`, `completion_tokens`, ...) as `Reply.usage`."""
        # ASCII-escaped JSON: an env's text may hold a lone surrogate, which UTF-8 cannot carry
        data = json.dumps(self.request(messages, ctx.env.tools)).encode()
        try:
            response = self._post(data)
            msg = response["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise AgentHubError(f"chat server {self.base_url} sent a malformed reply: {type(e).__name__}: {e}") \
                from e
        if not isinstance(msg, dict):
            raise AgentHubError(f"chat server {self.base_url} sent a message that is not an object: {msg!r:.80}")
        out: Message = {"role": "assistant", "content": msg.get("content")}
        if msg.get("tool_calls"):
            out["tool_calls"] = msg["tool_calls"]
        reasoning = msg.get("reasoning_content") or msg.get("reasoning")
        if reasoning:
            out["reasoning"] = reasoning  # type: ignore[typeddict-unknown-key]
        return Reply(out, usage=token_usage(response.get("usage")))

    def _post(self, data: bytes) -> Any:
        """POST `data` to /chat/completions, retrying as the class says; the parsed JSON."""
        url = f"{self.base_url}/chat/completions"
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                r = self.client.post(url, content=data)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as e:
                if last:
                    raise AgentHubError(f"chat server {self.base_url} failed after {attempt + 1} attempt(s): "
                                        f"{type(e).__name__}: {e}") from e
                time.sleep(self._backoff(attempt))
                continue
            except httpx.HTTPError as e:
                raise AgentHubError(f"chat server {self.base_url} failed: {type(e).__name__}: {e}") from e
            if r.is_success:
                return r.json()
            if last or not (r.status_code in _RETRY_STATUS or r.status_code >= 500):
                raise AgentHubError(f"chat server {self.base_url} answered {r.status_code} "
                                    f"after {attempt + 1} attempt(s): {_error_text(r)}")
            time.sleep(self._wait(r, attempt))
        raise AssertionError("unreachable")  # the loop returns or raises on its last attempt

    def _wait(self, r: httpx.Response, attempt: int) -> float:
        """Seconds to wait before retrying after `r`: its Retry-After when it has one."""
        after = retry_after(r.headers)
        return min(after, self.max_wait) if after is not None else self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        # half fixed, half random ("equal jitter"): never much shorter than planned, never in step
        delay = min(self.backoff * 2 ** attempt, self.max_wait)
        return delay / 2 + self._jitter.uniform(0, delay / 2)


def retry_after(headers: httpx.Headers) -> float | None:
    """A response's requested wait in seconds (`retry-after-ms`, or `Retry-After` as
    seconds or an HTTP date); None when it names none or nothing readable."""
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (ValueError, TypeError, OverflowError):
        return None


def token_usage(usage: Any) -> dict[str, int] | None:
    """A reply's `usage` as flat token counts: `prompt_tokens`, `completion_tokens`,
    `total_tokens` and, where the server itemises them, `reasoning_tokens` and
    `cached_tokens`; None when the reply has none."""
    if not isinstance(usage, dict):
        return None
    fields = {**usage, **_details(usage, "completion_tokens_details", "reasoning_tokens"),
              **_details(usage, "prompt_tokens_details", "cached_tokens")}
    counts = {k: v for k, v in fields.items() if k in _USAGE_KEYS and isinstance(v, int) and not isinstance(v, bool)}
    return counts or None


def _details(usage: dict[str, Any], key: str, field: str) -> dict[str, Any]:
    details = usage.get(key)
    return {field: details.get(field)} if isinstance(details, dict) else {}


def _error_text(r: httpx.Response) -> str:
    """The server's error message (OpenAI's `{"error": {"message": ...}}` or the body), short."""
    try:
        error = r.json().get("error")
        text = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        text = None
    return (str(text) if text else r.text or r.reason_phrase)[:300]
