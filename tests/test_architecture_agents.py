"""Agent kinds are found by name: built-in model kinds live with the trainer, and a third
party adds a kind through the `agenthub.agents` entry-point group."""

import subprocess
import sys
import textwrap

from agenthub.agents import AGENT_KINDS
from agenthub.loading import load_object

PLUGIN = '''
class EchoAgent:
    def __init__(self, rest, **options):
        self.name, self.rest, self.options = f"echo:{rest}", rest, options

    def act(self, messages, ctx):
        return self.rest
'''


def test_built_in_model_kinds_resolve_to_trainer_classes():
    hf = load_object(AGENT_KINDS["hf"][0], "agent")
    assert hf.__module__ == "agenthub.trainers.model_agents" and hf.kind == "hf"


def test_a_distribution_adds_an_agent_kind_and_cannot_shadow_a_built_in(tmp_path):
    (tmp_path / "echo_plugin.py").write_text(PLUGIN)
    info = tmp_path / "echo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[agenthub.agents]\necho = echo_plugin:EchoAgent\n"
                                           "hf = echo_plugin:EchoAgent\n")
    code = textwrap.dedent("""
        from agenthub.agents import load_agent, _agent_kinds
        agent = load_agent("echo:hello?x=1", temperature=0.5)
        print(agent.name, agent.options, _agent_kinds()["hf"][0])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["echo:hello?x=1", "{'temperature':", "0.5}",
                                  "agenthub.trainers.model_agents:HFAgent"]
