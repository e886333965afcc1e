"""Trajectory JSONL files: one `Trajectory.to_dict()` per line, appended crash-safely."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from agenthub.trajectory import Trajectory


class TrajectoryWriter:
    """Appends trajectories to a JSONL file, one complete line per write.

    Each line goes out in a single `os.write` on an O_APPEND descriptor and is flushed
    to disk, so finished episodes survive a crash or Ctrl-C; a torn tail left by an
    earlier hard crash is cut off when the file is opened again.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(self.path)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, trajectory: Trajectory) -> None:
        if self._fd is None:
            raise ValueError(f"writer for {self.path} is closed")
        record = trajectory.to_dict()
        try:
            data = (json.dumps(record, ensure_ascii=False, default=_jsonable) + "\n").encode()
        except UnicodeEncodeError:  # a lone surrogate (e.g. half an emoji a model wrote):
            # ASCII-escaped JSON keeps it as \udXXX and reads back to the same string
            data = (json.dumps(record, default=_jsonable) + "\n").encode()
        os.write(self._fd, data)
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _jsonable(value: Any) -> Any:
    """Fallback for numpy scalars and other odd values an env may put in `info`."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return repr(value)


def _cut_torn_tail(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def iter_trajectories(path: str | Path) -> Iterator[Trajectory]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n") and line.strip():
                yield Trajectory.from_dict(json.loads(line))


def read_trajectories(path: str | Path) -> list[Trajectory]:
    """Every complete trajectory in a JSONL file (a torn last line is ignored)."""
    return list(iter_trajectories(path))


def write_trajectories(path: str | Path, trajectories: list[Trajectory]) -> None:
    with TrajectoryWriter(path) as writer:
        for t in trajectories:
            writer.write(t)
