"""SWE-style repository tasks: real libraries with injected bugs, their own tests as
the verifier, the agent's tools in a sandbox.

Each shipped suite (`suites/NAME/instances.json`, made by `agenthub swe build-suite`)
registers the env `swe/NAME-v0` and the suite `swe/NAME` with its train/test splits;
the family also adds the `agenthub swe ...` commands (cli.py).
"""

from agenthub.registry import register, register_command
from agenthub.suites import register_suite

from .instances import load, shipped


def register_envs() -> None:
    register_command("swe", "agenthub.environments.swe.cli:add_commands")
    for name in shipped():
        suite = load(name)
        env_id = f"swe/{name}-v0"
        libs = ", ".join(suite.libraries)
        register(env_id, "agenthub.environments.swe.env:SweEnv", max_turns=50, suite=name,
                 description=f"Fix a bug injected into a real library ({libs}); its own tests judge the fix.")
        register_suite(f"swe/{name}", env_id, train=len(suite.split("train")), test=len(suite.split("test")),
                       description=f"{len(suite.instances)} validated bug-fixing tasks from {libs}.")
