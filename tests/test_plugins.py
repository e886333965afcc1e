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


def register():
    agenthub.register("myorg/maze-v0", entry_point="maze_plugin:MazeEnv", max_turns=30,
                      description="A corridor maze from a plugin")
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
