"""The one progress bar for long loops: episodes, training steps and epochs, generated
games, built suites."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def progress_bar(enabled: bool, description: str, total: int) -> Iterator[Callable[..., None]]:
    """Yields `advance(description=None)`: one of `total` steps done, with a new
    description when one is given (e.g. the latest metrics). Disabled: a no-op."""
    if not enabled:
        yield lambda description=None: None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn())
    task = bar.add_task(description, total=total)
    bar.start()

    def advance(description: str | None = None) -> None:
        bar.update(task, advance=1, **({} if description is None else {"description": description}))

    try:
        yield advance
    finally:
        bar.stop()
