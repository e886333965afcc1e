"""TextWorld games as agenthub envs: a generator configuration plus a seed is a game.

The seed picks the game (generated once, then cached; see `games` and `cache`). For
custom games `quest_length` may be a range `[low, high]`: the seed then also picks
the length, `low + seed % (high - low + 1)`, so a suite mixes lengths evenly.
Only the engine information the env uses is requested (admissible commands, won,
lost): the walkthrough and the maximum score are read once from the game's metadata,
never recomputed by TextWorld's planner.
"""

from __future__ import annotations

import re
from typing import Any

from .cache import CachedGame
from .games import GAME_FILE, TextWorldGames, import_textworld, quiet_jericho
from .meta_commands import commands_in, meta_command
from .text_game import TextGameEnv

_BANNER_LINE = re.compile(r"^[\s_|$\\/<>=-]*$")  # the ASCII-art title: no letters or digits
_PROMPT_LINE = re.compile(r"^\s*>.*$")  # the input prompt and the status line after it
_END_QUESTION = re.compile(r"Would you like to RESTART.*", re.DOTALL)
_BLANK_LINES = re.compile(r"\n\s*\n+")


class TextWorldEnv(TextGameEnv):
    def __init__(self, challenge: str = "custom", settings: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.challenge = challenge
        self.settings = dict(settings or {})
        TextWorldGames.of(challenge, self._settings_for(0))  # fail now on a bad challenge name

    def game_source(self, seed: int) -> TextWorldGames:
        return TextWorldGames.of(self.challenge, self._settings_for(seed))

    def _settings_for(self, seed: int) -> dict[str, Any]:
        settings = dict(self.settings)
        length = settings.get("quest_length")
        if isinstance(length, (list, tuple)):
            low, high = length
            settings["quest_length"] = low + seed % (high - low + 1)
        return settings

    def _start(self, game: CachedGame) -> Any:
        textworld = import_textworld()
        infos = textworld.EnvInfos(admissible_commands=True, won=True, lost=True)
        with quiet_jericho():
            return textworld.start(str(game.path / GAME_FILE), request_infos=infos)

    def _clean(self, text: str) -> str:
        """Drop the title art, the prompt/status line and the 'RESTART, RESTORE...' question."""
        text = _END_QUESTION.sub("", text)
        lines = text.splitlines()
        while lines and _BANNER_LINE.match(lines[0]):
            lines.pop(0)
        text = "\n".join(line.strip() for line in lines if not _PROMPT_LINE.match(line))
        return _BLANK_LINES.sub("\n\n", text).strip()

    def _refusal(self, command: str) -> str | None:
        meta = meta_command(command)
        if meta is not None:
            return (f"Error: {meta[:40]!r} is not available here: this game only takes in-game commands "
                    "(no restart, undo, save, restore, transcript or other out-of-game commands); nothing was run.")
        commands = len(commands_in(command))
        if commands > 1:
            return (f"Error: one command per turn; this holds {commands} (separated by '.', ',' or 'then'), "
                    "so nothing was run.")
        return None
