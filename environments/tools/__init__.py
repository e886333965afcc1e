"""Tool-use environments: function-calling tasks with verifiable answers."""

from agenthub.registry import register
from agenthub.suites import register_suite


def register_envs() -> None:
    register("tools/guess-number-v0", "agenthub.environments.tools.guess_number:GuessNumberEnv",
             max_turns=10, description="Guess an integer in [1, 64] with a `guess` tool; dense rewards.")
    register_suite("tools/guess-number", "tools/guess-number-v0", train=1000, test=100,
                   description="Guess-the-number games; the seed picks the secret.")
