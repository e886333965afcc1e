"""Task suites: named, reproducible lists of tasks with train/test splits.

A task is an env id plus the seed that selects its instance (a generated game, a
question, a repository bug); the env builds the instance lazily on `reset(seed=...)`,
so a suite of a thousand games costs nothing until it is played. Splits draw seeds from
disjoint ranges, so no test task is ever a train task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from agenthub.errors import AgentHubError, did_you_mean
from agenthub.registry import load_plugins

# Seeds of split k start at k * SPLIT_STRIDE: disjoint for any split under a billion tasks.
SPLIT_STRIDE = 1_000_000_000
SPLITS = ("train", "test", "valid")


@dataclass(frozen=True)
class Task:
    env_id: str
    seed: int
    task_id: str
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class Suite:
    name: str
    env_id: str
    sizes: dict[str, int]
    description: str = ""
    task_factory: Callable[[str, int], list[Task]] | None = None

    def tasks(self, split: str = "test", limit: int | None = None) -> list[Task]:
        if split not in self.sizes:
            raise AgentHubError(f"suite {self.name!r} has no split {split!r} (splits: {', '.join(self.sizes)})")
        n = self.sizes[split] if limit is None else min(limit, self.sizes[split])
        if self.task_factory is not None:
            return self.task_factory(split, n)
        base = (SPLITS.index(split) if split in SPLITS else 3) * SPLIT_STRIDE
        return [Task(self.env_id, base + i, f"{self.name}:{split}:{i}") for i in range(n)]


_suites: dict[str, Suite] = {}


def register_suite(name: str, env_id: str, train: int = 0, test: int = 0, valid: int = 0,
                   description: str = "", task_factory: Callable[[str, int], list[Task]] | None = None) -> Suite:
    """Register a suite of `env_id` instances; `task_factory(split, n)` overrides seeding."""
    sizes = {k: v for k, v in (("train", train), ("test", test), ("valid", valid)) if v}
    suite = Suite(name, env_id, sizes, description, task_factory)
    _suites[name] = suite
    return suite


def list_suites() -> list[Suite]:
    load_plugins()
    return sorted(_suites.values(), key=lambda s: s.name)


def get_suite(name: str) -> Suite:
    load_plugins()
    if name not in _suites:
        raise AgentHubError(f"unknown suite {name!r}{did_you_mean(name, list(_suites))}")
    return _suites[name]


def load_suite(name: str, split: str = "test", limit: int | None = None) -> list[Task]:
    """The tasks of `split`, in a fixed order: the same list on every machine."""
    if ":" in name and split == "test":
        name, split = name.rsplit(":", 1)
    return get_suite(name).tasks(split, limit)
