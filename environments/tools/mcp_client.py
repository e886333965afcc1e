"""A synchronous MCP client over stdio: initialize, list tools, call a tool.

MCP's stdio transport is JSON-RPC 2.0, one message per line. An env steps synchronously
and needs a hard timeout on every call, so this client speaks the few methods it needs
directly rather than running the `mcp` package's async client on an event loop: it
sends `initialize` and `notifications/initialized`, pages through `tools/list`, sends
`tools/call`, answers the server's `ping` and refuses its other requests (sampling,
roots), and ignores notifications and lines that are not JSON (servers' stray logging).

Every failure is an `McpError` with one line saying what happened: the server's error
answer, a timeout (the request is then cancelled), an oversized answer, or the server
having exited (with its exit code and the end of its stderr).
"""

from __future__ import annotations

import json
import queue
import time
from typing import Any

from agenthub.environments.tools.mcp_process import OVERSIZED, MAX_LINE_BYTES, ServerProcess
from agenthub.sandbox.base import SandboxError
from agenthub.types import ToolSpec

PROTOCOL_VERSION = "2025-06-18"
CLIENT_INFO = {"name": "agenthub", "version": "0.1"}
MAX_TOOL_PAGES = 50
CANCEL_TIMEOUT = 1.0  # seconds to send a message that needs no answer (a cancellation, a reply to the server)


class McpError(Exception):
    """A request to the MCP server failed; the message says why, in one line."""


class McpClient:
    """The client side of one MCP session with `process` (already started)."""

    def __init__(self, process: ServerProcess):
        self.process = process
        self._next_id = 0
        self.broken: str | None = None  # why the session cannot go on, once it cannot
        self.timeouts = 0  # requests that got no answer in time: the server may still be busy with them
        self.server_info: dict[str, Any] = {}

    def initialize(self, timeout: float) -> dict[str, Any]:
        """The MCP handshake; returns the server's `initialize` result."""
        result = self.request("initialize", {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                                             "clientInfo": CLIENT_INFO}, timeout)
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"}, timeout)
        self.server_info = result.get("serverInfo") or {}
        return result

    def list_tools(self, timeout: float) -> list[dict[str, Any]]:
        """Every tool the server offers (MCP tool objects: name, description, inputSchema)."""
        tools: list[dict[str, Any]] = []
        cursor = None
        for _ in range(MAX_TOOL_PAGES):
            result = self.request("tools/list", {"cursor": cursor} if cursor else {}, timeout)
            tools += [t for t in result.get("tools") or [] if isinstance(t, dict) and isinstance(t.get("name"), str)]
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return tools

    def call_tool(self, name: str, arguments: dict[str, Any], timeout: float) -> str:
        """The tool's answer as the agent reads it; `Error: ...` when the tool reported an
        error. McpError when the call itself failed (timeout, crash, protocol error)."""
        result = self.request("tools/call", {"name": name, "arguments": arguments}, timeout)
        text = result_text(result)
        return f"Error: {text}" if result.get("isError") and not text.startswith("Error:") else text

    def request(self, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request and wait at most `timeout` seconds for its answer."""
        if self.broken:
            raise McpError(f"the MCP server is no longer usable: {self.broken}")
        deadline = time.monotonic() + timeout
        self._next_id += 1
        request_id = self._next_id
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}, timeout)
        while True:
            try:
                remaining = deadline - time.monotonic()
                if remaining <= 0:  # also when the server floods its stdout with lines that are not answers
                    raise queue.Empty
                line = self.process.lines.get(timeout=remaining)
            except queue.Empty:
                self.timeouts += 1
                self._send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                            "params": {"requestId": request_id, "reason": "timeout"}}, CANCEL_TIMEOUT, quiet=True)
                raise McpError(f"{method} got no answer within {timeout:g} s and was cancelled") from None
            if line is None:
                note = self._exit_note()
                self.broken = f"it exited ({note})"
                raise McpError(f"the MCP server exited during {method} ({note})")
            if line == OVERSIZED:
                raise McpError(f"the answer to {method} was over {MAX_LINE_BYTES // 2**20} MiB and was dropped")
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not protocol: a server printing to stdout
            if not isinstance(message, dict):
                continue
            if "method" in message:
                self._answer_server_request(message)
            elif message.get("id") == request_id:
                if "error" in message:
                    error = message["error"] if isinstance(message["error"], dict) else {}
                    raise McpError(f"{method}: {error.get('message') or 'the server answered with an error'}")
                result = message.get("result")
                return result if isinstance(result, dict) else {}
            # anything else: the late answer to a request that timed out

    def _exit_note(self) -> str:
        proc = self.process.proc
        if proc is not None:
            try:
                proc.wait(timeout=0.5)  # its exit code and last words, if it is on its way out
            except Exception:
                pass
        return self.process.exit_note()

    def _answer_server_request(self, message: dict[str, Any]) -> None:
        if "id" not in message:
            return  # a notification (logging, progress, list changed)
        if message["method"] == "ping":
            answer: dict[str, Any] = {"result": {}}
        else:
            answer = {"error": {"code": -32601, "message": f"{message['method']} is not supported"}}
        self._send({"jsonrpc": "2.0", "id": message["id"], **answer}, CANCEL_TIMEOUT, quiet=True)

    def _send(self, message: dict[str, Any], timeout: float, quiet: bool = False) -> None:
        try:
            self.process.send(json.dumps(message).encode() + b"\n", timeout)
        except SandboxError as e:  # a message may be half written: nothing more can be sent
            self.broken = str(e)
            if not quiet:
                raise McpError(str(e)) from None


def result_text(result: dict[str, Any]) -> str:
    """A `tools/call` result as text: its text contents, joined; other contents named;
    the structured content as JSON when there is no text."""
    parts = []
    for item in result.get("content") or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "text":
            parts.append(str(item.get("text", "")))
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {item.get('mimeType', 'unknown type')}]")
        elif kind == "resource_link":
            parts.append(f"[resource: {item.get('uri', '')}]")
        elif kind == "resource":
            resource = item.get("resource") or {}
            parts.append(str(resource.get("text", f"[resource: {resource.get('uri', '')}]")))
    if not parts and result.get("structuredContent") is not None:
        parts.append(json.dumps(result["structuredContent"]))
    return "\n".join(parts)


def openai_tool(tool: dict[str, Any]) -> ToolSpec:
    """An MCP tool as an OpenAI function schema (its input schema is already JSON Schema)."""
    schema = tool.get("inputSchema")
    parameters = dict(schema) if isinstance(schema, dict) else {}
    parameters.setdefault("type", "object")
    parameters.setdefault("properties", {})
    return {"type": "function", "function": {"name": tool["name"], "description": str(tool.get("description") or ""),
                                             "parameters": parameters}}
