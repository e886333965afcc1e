"""The on-disk cache of generated games, shared by the TextWorld and ALFWorld families.

Generating a game costs seconds (TextWorld runs the Inform7 compiler; ALFWorld checks
solvability with its expert), playing one costs milliseconds, so every game is built
once per (generator settings, seed) and kept. A game is a directory holding the game
files and `meta.json`; it is built in a private temporary directory and renamed into
place in one atomic step, so threads and processes that build the same game at the
same time never see a half-written one: the first rename wins and the others discard
their copy.

The cache lives under `$AGENTHUB_CACHE` (default `~/.cache/agenthub`), one folder per
family.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol


from agenthub.errors import AgentHubError
from agenthub.progress import progress_bar

META_FILE = "meta.json"

# TextWorld is not thread-safe: its TatSu parsers keep state while they parse (game loading,
# ALFWorld's text grammar at every step), its generators use global RNGs, ALFWorld's expert
# uses `random` and fast-downward swaps `sys.argv` and `sys.stdout`. So within a process one
# thread at a time builds or plays a game (envs hold this lock around engine calls); separate
# processes are independent, and kept apart in the cache by the atomic rename.
engine_lock = threading.RLock()


def cache_root() -> Path:
    return Path(os.environ.get("AGENTHUB_CACHE") or Path.home() / ".cache" / "agenthub")


class GameSource(Protocol):
    """Knows how to build one family of games; picklable, so worker processes can build too."""

    family: str

    def key(self) -> str:
        """A folder name that changes whenever the generated games would."""
        ...

    def build(self, seed: int, out_dir: Path) -> dict[str, Any]:
        """Write the game for `seed` into `out_dir` and return its metadata."""
        ...


@dataclass(frozen=True)
class CachedGame:
    path: Path  # the game's directory
    meta: dict[str, Any]


def game_dir(source: GameSource, seed: int) -> Path:
    return cache_root() / source.family / source.key() / str(seed)


def is_cached(source: GameSource, seed: int) -> bool:
    return (game_dir(source, seed) / META_FILE).is_file()


def ensure_game(source: GameSource, seed: int) -> CachedGame:
    """The game for (source, seed), built first if no process has built it yet."""
    final = game_dir(source, seed)
    if not (final / META_FILE).is_file():
        with engine_lock:
            if not (final / META_FILE).is_file():
                _build_into_place(source, seed, final)
    return CachedGame(final, json.loads((final / META_FILE).read_text()))


def _build_into_place(source: GameSource, seed: int, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{seed}.", dir=final.parent))
    try:
        meta = source.build(seed, tmp)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the game from other users of a shared cache
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / META_FILE).is_file():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pregenerate(env_id: str, seeds: Iterable[int], processes: int = 2, progress: bool = True) -> int:
    """Build the games of `env_id` for `seeds` ahead of play, in `processes` worker
    processes, with a progress bar; games already cached are skipped. Returns how many
    games were built. Works for every env whose env class has `game_source(seed)`."""
    from agenthub.factory import make

    env = make(env_id)
    try:
        source_for = getattr(env.unwrapped, "game_source", None)
        if source_for is None:
            raise AgentHubError(f"{env_id} does not generate games: nothing to pregenerate")
        todo = [(source, seed) for seed in seeds
                if not is_cached(source := source_for(seed), seed)]
    finally:
        env.close()
    if not todo:
        return 0
    with progress_bar(progress, f"generating {env_id} games", len(todo)) as advance:
        if processes <= 1:
            for source, seed in todo:
                ensure_game(source, seed)
                advance()
        else:
            with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
                for future in as_completed([pool.submit(ensure_game, source, seed) for source, seed in todo]):
                    future.result()
                    advance()
    return len(todo)
