"""MCP tools (issue 17 item 7): a real MCP server, written with the official `mcp`
package, runs in the bwrap sandbox; its tools become the env's OpenAI tool specs and
every way a call can go wrong comes back as an `Error: ...` tool message."""

import json
import os
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agenthub
from agenthub import sandbox
from agenthub.environments.tools import mcp_process
from agenthub.environments.tools.mcp_env import (DEMO_KINDS, SYSTEM_PROMPT, McpEnv, McpSetupError, answer_matches,
                                                  python_server)
from agenthub.sandbox.base import SandboxError
from agenthub.sandbox.leaks import processes_with
from agenthub.types import tool_calls_message

pytest.importorskip("mcp", reason="the MCP tests need the official `mcp` package: pip install 'agenthub[mcp]'")
try:
    sandbox.check("bwrap")
except SandboxError as e:  # pragma: no cover - depends on the host
    pytest.skip(f"MCP servers run in the bwrap sandbox, which cannot start here: {e}", allow_module_level=True)

EXAMPLES = int(os.environ.get("AGENTHUB_HYPOTHESIS_EXAMPLES", "10"))

SERVER = '''
import asyncio, json, os, socket, subprocess, sys
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("test")
count = 0

@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b

@server.tool()
def echo(text: str) -> str:
    """Say it back."""
    return text

@server.tool()
def counter() -> int:
    """How many times this was called in this session."""
    global count
    count += 1
    return count

@server.tool()
def fail(why: str) -> str:
    """Always fails."""
    raise ToolError(why)

@server.tool()
async def slow(seconds: float) -> str:
    """Sleeps."""
    await asyncio.sleep(seconds)
    return "awake"

@server.tool()
async def block(seconds: float) -> str:
    """Sleeps without giving the event loop back: the server stops reading its input."""
    import time
    time.sleep(seconds)
    return "unblocked"

@server.tool()
async def flood(lines: int) -> str:
    """Prints lines that are not protocol messages to stdout; forever when lines < 0."""
    n = 0
    while n != lines:
        sys.stdout.write("noise " * 20 + "\\n")
        n += 1
    sys.stdout.flush()
    return "done"

@server.tool()
def big(n: int) -> str:
    """n characters."""
    return "x" * n

@server.tool()
def crash(code: int) -> str:
    """Exits the server."""
    sys.stderr.write("crashing on purpose\\n")
    sys.stderr.flush()
    os._exit(code)

@server.tool()
def whereami() -> str:
    """What the server can see of its host."""
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=1).close()
        net = True
    except OSError:
        net = False
    return json.dumps({"uid": os.getuid(), "host": socket.gethostname(), "net": net,
                       "sees_repo": os.path.exists("/work/main/README.md"), "cwd": os.getcwd()})

@server.tool()
def spawn(token: str) -> str:
    """Starts a detached process that would run for a long time."""
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", token],
                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return "started"

server.run("stdio")
'''
TASK = {"prompt": "What is 40 + 2?", "answer": 42}


def make_env(token: str = "", **options) -> agenthub.Env:
    """`tools/mcp-v0` on the test server, behind the episode contract as users get it."""
    args = [token] if token else []
    return agenthub.make("tools/mcp-v0", mcp_servers={"test": python_server(SERVER, args)}, tasks=[TASK], **options)


def call(tool: str, /, **arguments) -> dict:
    return tool_calls_message([(tool, arguments)], "c")


def reply(env: agenthub.Env, tool: str, /, **arguments) -> str:
    obs, *_ = env.step(call(tool, **arguments))
    assert obs[0]["role"] == "tool" and obs[0]["tool_call_id"] == "c_0"
    return obs[0]["content"]


@pytest.fixture(scope="module")
def env():
    env = make_env(call_timeout=2.0, max_turns=10_000)
    env.reset(seed=0)
    yield env
    env.close()


def test_server_tools_become_openai_specs_and_calls_are_routed(env):
    names = [t["function"]["name"] for t in env.tools]
    assert set(names) == {"add", "echo", "counter", "fail", "slow", "big", "crash", "whereami", "spawn", "block",
                          "flood", "answer"}
    add = next(t for t in env.tools if t["function"]["name"] == "add")
    assert add["type"] == "function" and add["function"]["description"] == "Add two integers."
    assert add["function"]["parameters"]["properties"]["a"]["type"] == "integer"
    assert add["function"]["parameters"]["required"] == ["a", "b"]
    assert reply(env, "add", a=40, b=2) == "42"
    assert reply(env, "echo", text="héllo\nworld") == "héllo\nworld"
    # Model text is parsed against the server's tools (the hermes format), like any tool env.
    obs, *_ = env.step('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>')
    assert obs[0]["content"] == "3"


def test_every_failure_is_an_error_observation(env):
    failed = reply(env, "fail", why="the disk is on fire")
    assert failed.startswith("Error: ") and failed.endswith("the disk is on fire")
    timed_out = reply(env, "slow", seconds=30)
    assert timed_out.startswith("Error:") and "within 2 s" in timed_out
    assert reply(env, "slow", seconds=0) == "awake"  # the server went on after the cancelled call
    cut = reply(env, "big", n=50_000)
    assert len(cut) <= 4000 and "cut: the answer was 50,000 characters" in cut
    oversized = reply(env, "big", n=5_000_000)  # one JSON-RPC line of ~10 MB
    assert oversized.startswith("Error:") and "MiB" in oversized
    assert reply(env, "add", a="forty", b=2).startswith("Error:")  # the server's argument validation
    assert reply(env, "add", a=[1], b=2).startswith("Error: a must be a whole number")  # checked before sending
    assert reply(env, "echo", text="x" * 20_000).startswith("Error: the arguments of echo are over")
    assert reply(env, "echo", text="still here") == "still here"
    assert reply(env, "flood", lines=20_000) == "done"  # stray stdout lines are skipped
    obs, reward, terminated, _, info = env.step({"role": "assistant", "content": "", "tool_calls": [
        call("fail", why="a")["tool_calls"][0], {**call("add", a=1, b=1)["tool_calls"][0], "id": "d"}]})
    assert [m["content"][:6] for m in obs] == ["Error:", "2"] and info["reward_components"]["tool_errors"] == 1.0
    assert reward == 0.0 and not terminated


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.sampled_from(["add", "echo", "fail", "big", "counter"]),
       arguments=st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=30), st.none(),
                                                                st.lists(st.integers(), max_size=3)), max_size=3))
def test_arbitrary_arguments_never_raise(env, name, arguments):
    obs, reward, terminated, truncated, info = env.step(call(name, **arguments))
    assert len(obs) == 1 and obs[0]["role"] == "tool" and isinstance(obs[0]["content"], str)
    assert not terminated and not truncated and reward == 0.0


def test_answer_ends_the_episode_and_is_judged():
    env = make_env()
    try:
        env.reset(seed=1)
        assert [reply(env, "counter") for _ in range(2)] == ["1", "2"]  # one session for the episode
        obs, reward, terminated, _, info = env.step(call("answer", answer="41"))
        assert (reward, terminated, info["success"], info["outcome"]) == (0.0, True, False, 0.0)
        env.reset(seed=1)
        assert reply(env, "counter") == "1"  # a fresh server every episode
        late = {**call("echo", text="late")["tool_calls"][0], "id": "d"}
        obs, reward, terminated, _, info = env.step({"role": "assistant", "content": "", "tool_calls": [
            call("answer", answer=" 42. ")["tool_calls"][0], late]})
        assert (reward, terminated, info["success"], info["outcome"]) == (1.0, True, True, 1.0)
        assert [m["content"] for m in obs] == ["Answer recorded: correct.",
                                               "Not run: the answer has already been given."]
    finally:
        env.close()


def test_server_crash_mid_episode_is_an_error_observation():
    env = make_env()
    try:
        env.reset(seed=0)
        assert reply(env, "counter") == "1"
        crashed = reply(env, "crash", code=3)
        assert crashed.startswith("Error: the MCP server exited") and "exit code 3" in crashed
        assert "crashing on purpose" in crashed  # the end of its stderr says why
        after = reply(env, "echo", text="hello?")
        assert after.startswith("Error: the MCP server is no longer usable: it exited (exit code 3")
        obs, reward, terminated, _, info = env.step(call("answer", answer="42"))
        assert reward == 1.0 and terminated  # the episode still ends normally
    finally:
        env.close()


def test_server_runs_in_the_bwrap_sandbox(env):
    seen = json.loads(reply(env, "whereami"))
    assert seen["host"] == "sandbox" and seen["uid"] != os.getuid() and seen["cwd"] == "/workspace"
    assert not seen["sees_repo"] and not seen["net"]


@pytest.mark.parametrize("hang", [("block", {"seconds": 600}), ("flood", {"lines": -1})], ids=["block", "flood"])
def test_a_server_that_hangs_answers_errors_in_bounded_time(hang):
    env = make_env(call_timeout=0.5, max_turns=100)
    try:
        env.reset(seed=0)
        assert "within 0.5 s" in reply(env, hang[0], **hang[1])
        start = time.monotonic()
        replies = [reply(env, "echo", text="y" * 9000) for _ in range(12)]  # more than a pipe holds, unread
        assert all(r.startswith("Error:") for r in replies), replies
        assert "stopped reading its input" in replies[-1]  # sending, too, gives up at the timeout
        assert time.monotonic() - start < 12 * 2.0  # each within its timeout (plus sending a cancellation)
        obs, reward, terminated, _, _ = env.step(call("answer", answer="42"))
        assert reward == 1.0 and terminated
    finally:
        start = time.monotonic()
        env.close()  # the server ignores the end of its input: it is killed
        assert time.monotonic() - start < 10


def eventually(check, seconds: float = 5.0):
    """`check()`'s first true value within `seconds` (processes take a moment to show in /proc)."""
    deadline = time.monotonic() + seconds
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


@pytest.mark.parametrize("how", ["close", "crash_then_close", "reset", "no_cgroup"])
def test_close_leaves_no_process_behind(how, monkeypatch):
    if how == "no_cgroup":  # where no cgroup can be made (not root), subreaper.py kills the tree
        monkeypatch.setattr(mcp_process.Cgroup, "create", classmethod(lambda cls, *args: None))
    server_token, child_token = f"srv-{uuid.uuid4().hex}", f"kid-{uuid.uuid4().hex}"
    env = make_env(server_token)
    try:
        env.reset(seed=0)
        assert reply(env, "spawn", token=child_token) == "started"
        assert processes_with(server_token) and eventually(lambda: processes_with(child_token))
        if how == "crash_then_close":
            assert reply(env, "crash", code=1).startswith("Error:")
        if how == "reset":  # a new episode stops the old server and all it started
            old = set(processes_with(server_token))
            env.reset(seed=1)
            assert not old & set(processes_with(server_token)) and not processes_with(child_token)
    finally:
        env.close()
        env.close()  # idempotent
    assert processes_with(server_token) == [] and processes_with(child_token) == []


def test_no_silent_fallback_to_no_isolation(monkeypatch):
    with pytest.raises(SandboxError, match="bwrap backend"):
        make_env(backend="docker").reset(seed=0)
    import agenthub.sandbox.bwrap as bwrap
    monkeypatch.setattr(bwrap.shutil, "which", lambda name: None)
    env = make_env()
    with pytest.raises(SandboxError, match="bubblewrap"):
        env.reset(seed=0)
    env.close()
    monkeypatch.undo()
    local = make_env(backend="local")  # asked for by name, it runs (unisolated)
    try:
        local.reset(seed=0)
        assert reply(local, "add", a=2, b=3) == "5"
    finally:
        local.close()


def test_bad_configs_fail_with_one_clear_line():
    with pytest.raises(McpSetupError, match="give `tasks`"):
        McpEnv(mcp_servers={"x": {"command": ["true"]}})
    with pytest.raises(McpSetupError, match="needs a `prompt` and an `answer`"):
        McpEnv(mcp_servers={"x": {"command": ["true"]}}, tasks=[{"prompt": "?"}])
    for config, why in [({"command": []}, "needs a `command`"), ({"command": ["true"], "bogus": 1}, "unknown keys"),
                        ({"command": ["no-such-server-binary"]}, "did not start"),
                        ({"command": ["sh", "-c", "echo not json; exit 2"]}, "did not start")]:
        env = McpEnv(mcp_servers={"x": config}, tasks=[TASK], startup_timeout=10)
        with pytest.raises(McpSetupError, match=why):
            env.reset(seed=0)
        assert env.clients == {} and [t["function"]["name"] for t in env.tools] == ["answer"]
        env.close()
    clash = McpEnv(mcp_servers={"a": python_server(SERVER), "b": python_server(SERVER)}, tasks=[TASK])
    with pytest.raises(McpSetupError, match="is taken"):
        clash.reset(seed=0)
    clash.close()


def test_bundled_demo_server_oracle_wins_every_kind():
    first_seed = {}  # the first seed of each kind of question
    for seed in range(40):
        first_seed.setdefault(McpEnv._demo_task(seed)["prompt"].split()[0], seed)
    assert len(first_seed) == len(DEMO_KINDS)
    env = agenthub.make("tools/mcp-v0")
    try:
        pids = set()
        for seed in first_seed.values():
            obs, info = env.reset(seed=seed)
            assert obs == obs_of(seed)  # deterministic reset: the seed alone picks the task
            assert {t["function"]["name"] for t in env.tools} == {"list_items", "get_item", "answer"}
            pids.add(env.unwrapped.clients["shops"].process.proc.pid)
            unknown = reply(env, "get_item", shop=seed, name="unicorn")
            assert unknown.startswith("Error: ") and "no item named 'unicorn'" in unknown
            for action in env.unwrapped.oracle_actions():
                obs, reward, terminated, truncated, info = env.step(action)
                assert not any(m["content"].startswith("Error:") for m in obs)
            assert terminated and reward == 1.0 and info["success"]
        assert len(pids) == 1  # the demo server is stateless: one process serves every episode
        env.unwrapped.clients["shops"].process.close()  # ... and is started again once it is gone
        env.reset(seed=0)
        assert env.unwrapped.clients["shops"].process.alive()
    finally:
        env.close()


def obs_of(seed: int) -> list:
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": McpEnv._demo_task(seed)["prompt"]}]


@pytest.mark.parametrize("given_, expected, ok", [
    ("42", 42, True), ("42.0", 42, True), ("1,234", 1234, True), ("43", 42, False),
    ("  Hammer. ", "hammer", True), ("hammers", "hammer", False), ("b", ["a", "b"], True), ("", 0, False)])
def test_answer_matching(given_, expected, ok):
    assert answer_matches(given_, expected) is ok
