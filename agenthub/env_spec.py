"""What the registry records per env: its id (`FAMILY/NAME-vN`), entry point and defaults."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from agenthub.env import Env

ID_PATTERN = re.compile(r"^(?P<family>[a-z0-9][a-z0-9_.-]*)/(?P<name>[A-Za-z0-9][A-Za-z0-9_.+-]*?)-v(?P<version>\d+)$")


@dataclass
class EnvSpec:
    id: str
    entry_point: str | Callable[..., Env]
    max_turns: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    plugin: str = "agenthub"  # the distribution that registered it

    @property
    def family(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def version(self) -> int:
        return int(ID_PATTERN.match(self.id).group("version"))  # type: ignore[union-attr]

    def to_dict(self) -> dict[str, Any]:
        ep = self.entry_point if isinstance(self.entry_point, str) else \
            f"{self.entry_point.__module__}:{self.entry_point.__qualname__}"
        return {"id": self.id, "family": self.family, "version": self.version, "entry_point": ep,
                "max_turns": self.max_turns, "kwargs": self.kwargs, "description": self.description,
                "plugin": self.plugin}
