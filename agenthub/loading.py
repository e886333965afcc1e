"""Resolving "module:attr.path" strings, as used by env entry points and agent specs."""

from __future__ import annotations

import importlib
from typing import Any

from agenthub.errors import AgentHubError


def load_object(spec: str, what: str) -> Any:
    """Import `module` and walk `attr.path`; a failure is a one-line AgentHubError."""
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise AgentHubError(f"cannot load {what} {spec!r}: {e}") from e
    return obj
