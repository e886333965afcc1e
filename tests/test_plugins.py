"""A third-party distribution, built and pip-installed in a temp dir, registers an env
through the `agenthub.environments` entry point; agenthub needs no change to list it,
describe it and evaluate agents on it."""

import json
import subprocess
import sys
import textwrap

import pytest

import agenthub

from conftest import run_cli

PLUGIN = '''
import agenthub


class MazeEnv(agenthub.Env):
    """A corridor: walk 'east' `length` times to reach the exit."""

    def __init__(self, length=3):
        self.length, self.pos = length, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = 0
        return [{"role": "user", "content": f"You are in a corridor of length {self.length}."}], {}

    def step(self, action):
        if action.text.strip() == "east":
            self.pos += 1
        won = self.pos >= self.length
        info = {"success": True, "outcome": 1.0} if won else {}
        return [{"role": "user", "content": f"position {self.pos}"}], float(won), won, False, info

    def oracle_actions(self):
        return ["east"] * self.length


class ReadmeMazeEnv(agenthub.Env):
    """The README's example, verbatim in spirit: it reads `action.text`."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return [{"role": "user", "content": "You are in a maze."}], {}

    def step(self, action):
        won = action.text == "east"
        return [{"role": "user", "content": "..."}], float(won), won, False, {"success": won}


class DesignEchoEnv(agenthub.Env):
    """Written from DESIGN.md alone: "actions are a string or an assistant message dict"."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return [{"role": "user", "content": "Say hello."}], {}

    def step(self, action):
        text = action if isinstance(action, str) else action.get("content")
        won = "hello" in text.lower()
        return [{"role": "user", "content": f"you said {text}"}], float(won), won, False, {"success": won}

    def oracle_actions(self):
        return [{"role": "assistant", "content": "Hello!"}]


class MessageDictEnv(agenthub.Env):
    """Treats every action as an OpenAI message dict, tool calls included."""

    tools = [{"type": "function", "function": {"name": "shout", "description": "Shout a word.", "parameters": {
        "type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}}}]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return [{"role": "user", "content": "Shout hello."}], {}

    def step(self, action):
        calls = action.get("tool_calls") or []
        import json
        words = [json.loads(c["function"]["arguments"])["word"] for c in calls]
        won = "hello" in words or "hello" in (action["content"] or "")
        answers = [{"role": "tool", "tool_call_id": c["id"], "content": "heard"} for c in calls]
        return answers or [{"role": "user", "content": "say it"}], float(won), won, False, {"success": won}


def register():
    agenthub.register("myorg/maze-v0", entry_point="maze_plugin:MazeEnv", max_turns=30,
                      description="A corridor maze from a plugin")
    agenthub.register("myorg/readme-maze-v0", entry_point="maze_plugin:ReadmeMazeEnv", max_turns=5)
    agenthub.register("myorg/echo-v0", entry_point="maze_plugin:DesignEchoEnv", max_turns=5)
    agenthub.register("myorg/shout-v0", entry_point="maze_plugin:MessageDictEnv", max_turns=5)


def shouting_agent(messages, ctx):
    """A client that sends tool calls with null content and no ids."""
    return {"role": "assistant", "content": None,
            "tool_calls": [{"type": "function", "function": {"name": "shout", "arguments": '{"word": "hello"}'}}]}
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    src = tmp_path_factory.mktemp("maze-plugin")
    (src / "maze_plugin.py").write_text(PLUGIN)
    (src / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "maze-plugin"
        version = "0.1.0"
        [tool.setuptools]
        py-modules = ["maze_plugin"]
        [project.entry-points."agenthub.environments"]
        maze = "maze_plugin:register"
    '''))
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(src)], check=True, capture_output=True)
    return {"PYTHONPATH": str(site)}


def test_plugin_env_is_listed_and_evaluated(plugin_site, tmp_path):
    listed = run_cli("list", "--json", env=plugin_site)
    assert listed.returncode == 0, listed.stderr
    envs = {e["id"]: e for e in json.loads(listed.stdout)["envs"]}
    assert envs["myorg/maze-v0"]["plugin"] == "maze-plugin"
    assert "tools/guess-number-v0" in envs  # built-ins still there

    info = run_cli("info", "myorg/maze-v0", "--json", env=plugin_site)
    assert json.loads(info.stdout)["first_observation"][0]["content"].startswith("You are in a corridor")

    res = run_cli("eval", "myorg/maze-v0", "--agent", "oracle", "--episodes", "3", "--out", str(tmp_path),
                  "--json", env=plugin_site)
    assert res.returncode == 0, res.stderr
    results = json.loads(res.stdout)
    assert results["success_rate"] == 1.0 and results["mean_turns"] == 3.0


def test_plugin_env_via_python_and_gymnasium(plugin_site):
    code = ("import agenthub, gymnasium; e = agenthub.make('myorg/maze-v0', length=2); e.reset(seed=0); "
            "print(e.step('east')[0][0]['content'], e.step('east')[2]); "
            "g = gymnasium.make('myorg/maze-v0'); print(g.reset(seed=1)[0][0]['content'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={
        **__import__("os").environ, **plugin_site})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["position 1 True", "You are in a corridor of length 3."]


def test_registering_an_id_again_with_another_env_warns():
    """Two test modules once shared an id and one silently replaced the other's env."""
    from agenthub.environments.tools.guess_number import GuessNumberEnv

    class Other(GuessNumberEnv):
        pass

    agenthub.register("test/registered-twice-v0", GuessNumberEnv)
    agenthub.register("test/registered-twice-v0", GuessNumberEnv)  # the same env again: silent
    with pytest.warns(UserWarning, match="registered again"):
        agenthub.register("test/registered-twice-v0", Other)
    assert isinstance(agenthub.make("test/registered-twice-v0").unwrapped, Other)


def test_plugin_envs_written_from_design_and_readme_work_everywhere(plugin_site, tmp_path):
    """Issue 13, kind 9: an env that reads the action as a plain string or as a message dict
    (DESIGN.md), or as `.text` (README), works through make, unwrapped (check_env and its
    own action space), and `agenthub eval` with an oracle and a MODULE:CALLABLE agent."""
    code = """if True:
        import agenthub
        from gymnasium.utils.env_checker import check_env
        for env_id in ("myorg/echo-v0", "myorg/shout-v0", "myorg/readme-maze-v0"):
            env = agenthub.make(env_id)
            check_env(env.unwrapped, skip_render_check=True)
            env.unwrapped.reset(seed=0)
            env.unwrapped.step(env.action_space.sample())
            env.reset(seed=0)
            print(env_id, env.step("")[4].get("action_error"), env.step({"role": "assistant", "content": None})[3])
        echo = agenthub.make("myorg/echo-v0")
        echo.reset(seed=0)
        print(echo.step({"role": "assistant", "content": [{"type": "text", "text": "hello"}]})[0][0]["content"])
        print(echo.unwrapped.step({"role": "assistant", "content": "<think>hi</think>hello there"})[0][0]["content"])
        maze = agenthub.make("myorg/readme-maze-v0")
        maze.reset(seed=0)
        print(maze.step("<think>go</think>east")[2])
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, **plugin_site})
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["myorg/echo-v0", "myorg/shout-v0", "myorg/readme-maze-v0"]
    assert all("empty action" in line for line in lines[:3])
    assert lines[3:] == ["you said hello", "you said hello there", "True"]

    for agent, env_id in (("oracle", "myorg/echo-v0"), ("maze_plugin:shouting_agent", "myorg/shout-v0")):
        res = run_cli("eval", env_id, "--agent", agent, "--episodes", "2", "--out", str(tmp_path / agent),
                      "--json", env=plugin_site)
        assert res.returncode == 0, res.stderr[-2000:]
        results = json.loads(res.stdout)
        assert results["success_rate"] == 1.0 and results["errors"] == 0, results
    [shout] = agenthub.read_trajectories(tmp_path / "maze_plugin:shouting_agent" / "trajectories.jsonl")[:1]
    call_id = shout.turns[0].action["tool_calls"][0]["id"]
    assert call_id and shout.final_observation[0]["tool_call_id"] == call_id
