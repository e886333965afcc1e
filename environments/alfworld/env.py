"""ALFWorld games as agenthub envs, played by the real ALFWorld text engine.

The engine is TextWorld's `PddlEnv` on ALFWorld's PDDL domain and grammar, with
ALFWorld's `AlfredDemangler` giving objects their readable names ("apple 1"). A
command outside the admissible list gets ALFWorld's "Nothing happens." and is flagged
as `reward_components["invalid_action"]`. With no `task_type`, the seed picks one of the
six task types (`seed % 6`), so `alfworld/all-v0` mixes them and shares the per-type
games.
"""

from __future__ import annotations

from typing import Any

from agenthub.environments.textworld.cache import CachedGame, GameSource
from agenthub.environments.textworld.text_game import TextGameEnv
from agenthub.errors import AgentHubError
from agenthub.types import Message

from .games import (GAME_FILE, OfficialGames, SyntheticGames, close_engine, data_root, fast_downward_guard,
                    import_alfworld, official_data_present, planner_reuse)
from .problems import TASK_TYPES

DATA_MODES = ("auto", "synthetic", "official")
_WELCOME = "-= Welcome to TextWorld, ALFRED! =-"


class AlfworldEnv(TextGameEnv):
    # A room has up to about 20 receptacles to search, and planner walkthroughs (all of
    # pick-two's) go straight to the objects: twice their length would leave no time to search.
    min_turns = 20
    system_prompt = "You are a household robot in a text-based world. Each turn, reply with exactly one command."

    def __init__(self, task_type: str | None = None, data: str = "auto", **kwargs: Any):
        super().__init__(**kwargs)
        if task_type is not None and task_type not in TASK_TYPES.values():
            raise AgentHubError(f"unknown ALFWorld task type {task_type!r} (known: {', '.join(TASK_TYPES.values())})")
        if data not in DATA_MODES:
            raise AgentHubError(f"data must be one of {', '.join(DATA_MODES)}, got {data!r}")
        if data == "official" and not official_data_present():
            raise AgentHubError(f"no official ALFWorld data in {data_root()}/json_2.1.1: run alfworld-download "
                                "or set ALFWORLD_DATA")
        self.task_type = task_type
        self.official = data == "official" or (data == "auto" and official_data_present())

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[list[Message], dict[str, Any]]:
        with fast_downward_guard():  # loading and resetting parse the PDDL problem
            return super().reset(seed=seed, options=options)

    def game_source(self, seed: int) -> GameSource:
        task_type = self.task_type or list(TASK_TYPES.values())[seed % len(TASK_TYPES)]
        return OfficialGames(task_type, str(data_root())) if self.official else SyntheticGames(task_type)

    def _start(self, game: CachedGame) -> Any:
        import_alfworld()
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from textworld.envs import PddlEnv

        with planner_reuse():
            pddl = PddlEnv(textworld.EnvInfos(admissible_commands=True, won=True))
        engine = AlfredDemangler(pddl, shuffle=False)
        engine.load(str(game.path / GAME_FILE))
        return engine

    def _clean(self, text: str) -> str:
        return text.replace(_WELCOME, "").strip()

    def _split_goal(self, opening: str) -> tuple[str, str]:
        """ALFWorld states the goal last: 'Your task is to: ...'."""
        room, marker, goal = opening.rpartition("Your task is to:")
        return (f"{marker}{goal}".strip(), room.strip()) if marker else super()._split_goal(opening)

    def _close_engine(self, engine: Any) -> None:
        close_engine(engine)  # also gives the engine's copy of the planner library back
