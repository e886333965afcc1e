"""Tool-use environments: function-calling tasks with verifiable answers."""

from agenthub.registry import register
from agenthub.suites import register_suite


def register_envs() -> None:
    register("tools/guess-number-v0", "agenthub.environments.tools.guess_number:GuessNumberEnv",
             max_turns=10, description="Guess an integer in [1, 64] with a `guess` tool; dense rewards.")
    register_suite("tools/guess-number", "tools/guess-number-v0", train=1000, test=100,
                   description="Guess-the-number games; the seed picks the secret.")
    register("tools/search-qa-v0", "agenthub.environments.tools.search_qa:SearchQAEnv", max_turns=12,
             description="Multi-hop QA (2-4 hops) over a generated encyclopedia with search/open tools; EM and F1.")
    register_suite("tools/search-qa", "tools/search-qa-v0", train=10000, test=500,
                   description="Multi-hop questions over the seed-0 world; the seed picks the question.")
    register("tools/compute-v0", "agenthub.environments.tools.compute:ComputeEnv", max_turns=8,
             description="Calculator, unit, date and sandboxed-Python tasks with ToolRL-style reward components.")
    register_suite("tools/compute", "tools/compute-v0", train=10000, test=500,
                   description="Computation tasks; the seed picks the task and its kind.")
    register("tools/mcp-v0", "agenthub.environments.tools.mcp_env:McpEnv", max_turns=8,
             description="Tools from MCP servers (stdio) in a sandbox; default: a bundled shop-inventory server.")
