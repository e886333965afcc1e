"""Gymnasium spaces for chat: observations are message lists, actions are assistant text
or an assistant message. They let `check_env` and any gymnasium tooling reason about
agenthub envs; `sample` gives short random text, enough to probe an env's robustness."""

from __future__ import annotations

import string
from typing import Any

import gymnasium

_ROLES = {"system", "user", "assistant", "tool"}
_ALPHABET = string.ascii_lowercase + " "


def _random_text(rng: Any, max_len: int = 24) -> str:
    n = int(rng.integers(1, max_len + 1))
    return "".join(_ALPHABET[i] for i in rng.integers(0, len(_ALPHABET), size=n))


def is_message(x: Any) -> bool:
    return (isinstance(x, dict) and x.get("role") in _ROLES
            and isinstance(x.get("content", ""), (str, list, type(None))))


class MessageSpace(gymnasium.Space):
    """A list of OpenAI-format chat messages."""

    def __init__(self, seed: int | None = None):
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> list[dict]:
        return [{"role": "user", "content": _random_text(self.np_random)}]

    def contains(self, x: Any) -> bool:
        return isinstance(x, list) and all(is_message(m) for m in x)

    def __repr__(self) -> str:
        return "MessageSpace()"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, MessageSpace)


class ActionSpace(gymnasium.Space):
    """Assistant output: raw text, or an assistant message (possibly with tool_calls)."""

    def __init__(self, seed: int | None = None):
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return _random_text(self.np_random)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) or (is_message(x) and x.get("role", "assistant") == "assistant")

    def __repr__(self) -> str:
        return "ActionSpace()"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ActionSpace)
