"""Tool use with tools from MCP servers (stdio), run in a sandbox.

The env's tools are whatever its MCP servers list, as OpenAI function schemas, plus its
own `answer` tool; calls go to the server that offers the tool. Each server runs in the
bwrap sandbox like agent code (`mcp_process.py`; `backend="local"` only by name) and is
started afresh on every reset, so episodes do not share state; a server whose config
says `"reuse": True` keeps no state, and one process serves every episode until close.

The task: a question (`prompt`) with a known answer. The agent uses the servers' tools
and calls `answer(answer=...)`; the episode ends there, with reward 1.0 when the answer
matches (numbers within 1e-6 relative, text ignoring case, spaces and a final period).

- With no options, `tools/mcp-v0` runs the bundled demo server (`mcp_demo_server.py`,
  the inventories of numbered shops) and asks one of three kinds of question about the
  shop numbered by the episode's seed (units in stock, stock value, the best-stocked
  item); it has an oracle.
- With `mcp_servers={"name": config}` and `tasks=[{"prompt": ..., "answer": ...}]`
  it runs your servers; the seed picks the task. A config is `command` (argv list or
  a command line), optional `files` ({path in the work dir: text}), `read_only` (host
  paths bound read-only at the same place), `env`, `memory`, `reuse`; `python_server(source)` makes one
  for a Python script that uses the installed `mcp` package.

Every tool answer, error, timeout, oversized answer or server crash comes back as a
tool message (`Error: ...` for failures), never as an exception. Starting a server that
cannot start (bad command, no sandbox here, `mcp` not installed) raises at reset or make.
"""

from __future__ import annotations

import importlib.util
import random
import shlex
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from agenthub.actions import Action, Call
from agenthub.env import Env, StepResult
from agenthub.environments.tools import mcp_demo_server as demo
from agenthub.environments.tools.limits import bounded, checked_arguments
from agenthub.environments.tools.mcp_client import McpClient, McpError, openai_tool
from agenthub.environments.tools.mcp_process import ServerProcess
from agenthub.errors import AgentHubError
from agenthub.types import Message, ToolSpec, tool_calls_message, tool_spec

ANSWER_TOOL = tool_spec("answer", "Give your final answer; this ends the episode.", {"answer": {"type": "string"}})
SYSTEM_PROMPT = ("You answer questions using the tools you are given. Call them as needed, then call "
                 "`answer` with the final answer alone (a number or a name), which ends the episode.")
DEMO_KINDS = ("stock", "value", "most_stock")
DEMO_SCRIPT = "mcp_demo_server.py"


class McpSetupError(AgentHubError):
    """An MCP server could not be configured or started (bad config, `mcp` missing, server failed)."""


def python_server(source: str, args: Sequence[str] = (), env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A server config that runs the Python script `source` (its text) with this
    interpreter's version of Python and the installed `mcp` package, read-only."""
    spec = importlib.util.find_spec("mcp")
    if spec is None or not spec.submodule_search_locations:
        raise McpSetupError("MCP servers written in Python need the `mcp` package: pip install 'agenthub[mcp]'")
    packages = str(Path(next(iter(spec.submodule_search_locations))).parent)
    return {"command": [f"python3.{sys.version_info.minor}", "-s", "server.py", *args], "files": {"server.py": source},
            "read_only": [packages], "env": {"PYTHONPATH": packages, **(env or {})}}


def answer_matches(given: Any, expected: Any) -> bool:
    """Whether `given` is the answer `expected` (or one of a list of accepted answers)."""
    if isinstance(expected, (list, tuple)):
        return any(answer_matches(given, e) for e in expected)
    text, want = _normal(given), _normal(expected)
    try:
        a, b = float(text.replace(",", "")), float(want.replace(",", ""))
    except ValueError:
        return text == want
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def _normal(value: Any) -> str:
    return " ".join(str(value).split()).casefold().rstrip(".")


class McpEnv(Env):
    version = "0"

    def __init__(self, mcp_servers: Mapping[str, Mapping[str, Any]] | None = None,
                 tasks: Sequence[Mapping[str, Any]] | None = None, backend: str = "bwrap", max_turns: int = 8,
                 call_timeout: float = 10.0, startup_timeout: float = 60.0, system_prompt: str = SYSTEM_PROMPT):
        """`call_timeout`: seconds one tool call may take (then its answer is an error);
        `startup_timeout`: seconds a server may take to answer `initialize` and `tools/list`."""
        if mcp_servers is not None and not tasks:
            raise McpSetupError("give `tasks` ([{'prompt': ..., 'answer': ...}]) with `mcp_servers`")
        for task in tasks or []:
            if "prompt" not in task or "answer" not in task:
                raise McpSetupError(f"each task needs a `prompt` and an `answer`, got {dict(task)!r}")
        self.configs = dict(mcp_servers) if mcp_servers is not None else None
        if self.configs is None:  # the demo needs `mcp` in the sandbox: say so at make, not at reset
            python_server("")
        self.tasks = list(tasks or [])
        self.backend, self.max_turns = backend, max_turns
        self.call_timeout, self.startup_timeout, self.system_prompt = call_timeout, startup_timeout, system_prompt
        self.tools: list[ToolSpec] = [ANSWER_TOOL]
        self.clients: dict[str, McpClient] = {}  # server name -> its session
        self.running: Mapping[str, Mapping[str, Any]] = {}  # the configs `clients` were started from
        self.routes: dict[str, McpClient] = {}  # tool name -> the session that offers it
        self.task: dict[str, Any] = {}
        self.answered = False

    # -- episodes
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[list[Message], dict[str, Any]]:
        super().reset(seed=seed)
        episode = seed if seed is not None else int(self.np_random.integers(2**31))
        self.task = self._demo_task(episode) if self.configs is None else dict(self.tasks[episode % len(self.tasks)])
        self._start_servers(self._demo_configs() if self.configs is None else self.configs)
        self.answered = False
        info = {"task_id": str(self.task.get("id", f"mcp#{episode}")), "servers": sorted(self.clients)}
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": self.task["prompt"]}], \
            info

    def step(self, action: Action) -> StepResult:  # type: ignore[override]
        assert self.task, "call reset() first"
        components = {"answer": 0.0, "tool_errors": 0.0}
        if not action.calls:
            replies: list[Message] = [{"role": "user", "content": "No tool was called. Use the tools, and `answer` "
                                                                  "to give the final answer."}]
        else:
            replies = [{"role": "tool", "tool_call_id": c.id, "content": self._run(c, components)}
                       for c in action.calls]
            components["tool_errors"] = float(sum(r["content"].startswith("Error:") for r in replies))
        info: dict[str, Any] = {"reward_components": components, "ground_truth": self.task["answer"]}
        if self.answered:
            info.update(success=components["answer"] == 1.0, outcome=components["answer"])
        return replies, components["answer"], self.answered, False, info

    def _run(self, call: Call, components: dict[str, float]) -> str:
        if self.answered:
            return "Not run: the answer has already been given."
        try:
            arguments = checked_arguments(call.name, call.arguments, self.tools)
        except ValueError as e:
            return f"Error: {e}"
        if call.name == "answer":
            self.answered = True
            components["answer"] = float(answer_matches(arguments.get("answer", ""), self.task["answer"]))
            return "Answer recorded: " + ("correct." if components["answer"] else "incorrect.")
        client = self.routes.get(call.name)
        if client is None:  # the action parser lets only listed tools through; kept for direct callers
            return f"Error: there is no tool named {call.name!r}"
        try:
            return bounded(client.call_tool(call.name, arguments, self.call_timeout))
        except McpError as e:
            return f"Error: {e}"

    def oracle_actions(self) -> list[str | Message]:
        """The demo's solution: the calls that find the answer, then `answer`."""
        if self.configs is not None or "oracle" not in self.task:
            raise NotImplementedError("only the bundled demo server's tasks have an oracle")
        steps = [*self.task["oracle"], [("answer", {"answer": str(self.task["answer"])})]]
        return [tool_calls_message(step, f"step_{i}") for i, step in enumerate(steps)]

    # -- servers
    def _start_servers(self, configs: Mapping[str, Mapping[str, Any]]) -> None:
        """Start `configs`' servers, stopping the last episode's; reusable ones that still run, and
        finished every request in time, are kept."""
        if configs == self.running and all(c.get("reuse") for c in configs.values()) and \
                all(not c.broken and not c.timeouts and c.process.alive() for c in self.clients.values()):
            return
        self._stop_servers()
        self.running = configs
        try:
            for name, config in configs.items():
                self.clients[name] = client = McpClient(_process(name, config, self.backend))
                client.initialize(self.startup_timeout)
                for tool in client.list_tools(self.startup_timeout):
                    if tool["name"] in self.routes or tool["name"] == "answer":
                        raise McpSetupError(f"the tool name {tool['name']!r} of MCP server {name!r} is taken; "
                                            f"rename it (`answer` is the env's own)")
                    self.routes[tool["name"]] = client
                    self.tools.insert(-1, openai_tool(tool))
        except McpError as e:
            self._stop_servers()
            raise McpSetupError(f"MCP server {name!r} did not start: {e}") from None
        except BaseException:
            self._stop_servers()
            raise

    def _stop_servers(self) -> None:
        for client in self.clients.values():
            client.process.close()
        self.clients, self.routes, self.tools, self.running = {}, {}, [ANSWER_TOOL], {}

    def close(self) -> None:
        self._stop_servers()

    # -- the bundled demo
    @staticmethod
    def _demo_configs() -> dict[str, dict[str, Any]]:
        return {"shops": {**python_server(Path(demo.__file__).read_text()), "reuse": True}}

    @staticmethod
    def _demo_task(seed: int) -> dict[str, Any]:
        """A question about shop number `seed`."""
        items = demo.inventory(seed)
        rng = random.Random(f"mcp-task:{seed}")
        kind, item = rng.choice(DEMO_KINDS), rng.choice(sorted(items))
        look_up = [("get_item", {"shop": seed, "name": item})]
        if kind == "stock":
            return {"prompt": f"How many units of {item} does shop {seed} have in stock?",
                    "answer": items[item]["stock"], "oracle": [look_up]}
        if kind == "value":
            return {"prompt": f"What is the total value, in cents, of all units of {item} that shop {seed} has in "
                              f"stock?", "answer": items[item]["price_cents"] * items[item]["stock"],
                    "oracle": [look_up]}
        return {"prompt": f"Which item does shop {seed} have the most units of in stock?",
                "answer": max(items, key=lambda n: items[n]["stock"]),
                "oracle": [[("list_items", {"shop": seed})], [("get_item", {"shop": seed, "name": n}) for n in items]]}


def _process(name: str, config: Mapping[str, Any], backend: str) -> ServerProcess:
    command = config.get("command")
    argv = shlex.split(command) if isinstance(command, str) else list(command or [])
    if not argv or not all(isinstance(a, str) for a in argv):
        raise McpSetupError(f"MCP server {name!r} needs a `command` (a list of strings or a command line)")
    unknown = set(config) - {"command", "files", "read_only", "env", "memory", "reuse"}
    if unknown:
        raise McpSetupError(f"MCP server {name!r}: unknown keys {sorted(unknown)}")
    return ServerProcess(argv, backend=backend, files=config.get("files"), read_only=config.get("read_only", ()),
                         env=config.get("env"), memory=config.get("memory", "1g"))
