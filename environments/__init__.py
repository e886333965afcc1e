"""The built-in environment families, one subpackage each.

Each family's `register_envs()` registers its env ids and suites; they run through the
same `agenthub.environments` entry point a third-party plugin uses. A family whose
optional dependencies are not installed still registers its ids: `make` then says
which extra to install.
"""

import importlib

FAMILIES = ["tools", "textworld", "alfworld", "web", "swe"]


def register_builtin() -> None:
    for family in FAMILIES:
        importlib.import_module(f"agenthub.environments.{family}").register_envs()
