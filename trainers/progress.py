"""One progress bar for the trainer's long loops (SFT steps, RL steps)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def progress_bar(enabled: bool, description: str, total: int) -> Iterator[Callable[[str], None]]:
    """Yields `advance(description)`: one step done, with a new description (e.g. metrics)."""
    if not enabled:
        yield lambda description: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    task = bar.add_task(description, total=total)
    bar.start()
    try:
        yield lambda text: bar.update(task, advance=1, description=text)
    finally:
        bar.stop()
