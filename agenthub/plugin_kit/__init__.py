"""The plugin kit: what a plugin author needs besides `agenthub.Env`.

- `scaffold` (`agenthub init NAME`): a plugin distribution (package, env class, entry
  point, suite, tests, README) rendered from the Jinja templates in `templates/`;
- `conformance` (`agenthub check ENV_ID`): the checks every env must pass, run on any
  registered env, plugins included.
"""

from __future__ import annotations

from agenthub.plugin_kit.conformance import CheckResult, run_checks
from agenthub.plugin_kit.scaffold import Scaffold, scaffold

__all__ = ["CheckResult", "Scaffold", "run_checks", "scaffold"]
