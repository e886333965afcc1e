"""ALFWorld games for the game cache: generated offline, or taken from the official data.

A game is what `alfworld-generate` makes: `game.tw-pddl` (ALFWorld's PDDL domain, its
text grammar with the goal filled in, the problem, `solvable` and the `walkthrough`)
beside `traj_data.json` (the task type and parameters ALFWorld's expert reads).

`SyntheticGames` builds the problem from the packaged scene layouts (see `problems`)
and checks it the way `alfworld-generate` does: ALFWorld's expert plays it through the
real text engine (TextWorld's `PddlEnv` with ALFWorld's Demangler, Infos and Expert
wrappers) and must win; its commands are the walkthrough (see `solve`). A problem no
expert solves in 50 steps is replaced by the next attempt for the same seed.

`OfficialGames` serves the official games when `$ALFWORLD_DATA/json_2.1.1` holds them
(after `alfworld-download`): train seeds index the train games, test seeds
`valid_unseen`, valid seeds `valid_seen`, as ALFWorld's own evaluation splits do.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from agenthub.environments.textworld.cache import engine_lock
from agenthub.errors import AgentHubError
from agenthub.suites import SPLIT_STRIDE

from .problems import GENERATOR_VERSION, Infeasible, make_problem

GAME_FILE = "game.tw-pddl"
TRAJ_FILE = "traj_data.json"
ATTEMPTS = 30
EXPERT_MAX_STEPS = 50  # ALFWorld's usual episode budget; games the expert needs longer for are redrawn
OFFICIAL_SPLITS = ("train", "valid_unseen", "valid_seen")  # by seed // SPLIT_STRIDE: train, test, valid


def import_alfworld() -> Any:
    try:
        import alfworld
        import textworld.envs.pddl  # noqa: F401
    except ImportError as e:
        raise AgentHubError(f"the ALFWorld envs need the alfworld package: pip install 'agenthub[alfworld]' ({e})")
    return alfworld


def alfworld_version() -> str:
    import_alfworld()
    import alfworld.info
    return alfworld.info.__version__


def data_root() -> Path:
    """Where ALFWorld keeps its data (the same rule as `alfworld.info`)."""
    return Path(os.environ.get("ALFWORLD_DATA") or Path.home() / ".cache" / "alfworld")


def official_data_present() -> bool:
    return (data_root() / "json_2.1.1" / "train").is_dir()


def logic_files() -> tuple[str, str]:
    """The PDDL domain and the text grammar shipped in the alfworld wheel."""
    data = Path(import_alfworld().__file__).parent / "data"
    return (data / "alfred.pddl").read_text(), (data / "alfred.twl2").read_text()


@contextmanager
def fast_downward_guard() -> Iterator[None]:
    """Around anything that parses a PDDL problem (loading or resetting a game).

    fast-downward's translator, which TextWorld's PDDL engine calls, overwrites
    `sys.argv` and swaps `sys.stdout` while it runs: the first would break the host
    program's argument parsing, the second loses output when two threads interleave.
    So one thread at a time (the engine lock), and `sys.argv` is put back."""
    with engine_lock:
        argv = sys.argv
        try:
            yield
        finally:
            sys.argv = argv


# Copies of fast-downward's library that closed engines gave back (see `planner_reuse`).
_free_planners: list[Any] = []


@contextmanager
def planner_reuse() -> Iterator[None]:
    """Make TextWorld `PddlEnv`s inside this block: each takes a planner library that a
    closed engine gave back, and loads a new one only when none is free.

    Every `PddlEnv` loads a private copy of fast-downward's shared library
    (`fast_downward.load_lib` copies libdownward.so so that engines share no planner
    state), and TextWorld never unloads it: about 4 MB of native memory per engine, which
    a training run that makes and closes envs piles up. Unloading it (`dlclose`) is not
    safe: loading the next copy then crashes the process. So a closed engine's copy is
    reset (`cleanup`) and kept for the next engine; at most as many copies exist as
    engines were ever open at once."""
    import fast_downward

    with engine_lock:
        load = fast_downward.load_lib
        fast_downward.load_lib = lambda: _free_planners.pop() if _free_planners else load()
        try:
            yield
        finally:
            fast_downward.load_lib = load


def close_engine(engine: Any) -> None:
    """Close a PDDL engine (TextWorld's `PddlEnv`, wrapped or not) and give its planner
    library back for `planner_reuse`; the engine is unusable afterwards."""
    engine.close()
    pddl = engine.unwrapped if hasattr(engine, "unwrapped") else engine
    lib = getattr(pddl, "downward_lib", None)
    if lib is not None:
        with engine_lock:
            lib.cleanup()
            pddl.downward_lib = None
            _free_planners.append(lib)


def solve(game_file: Path, task_type: str, seed: int) -> tuple[list[str], str] | None:
    """Commands that win the game and the ALFWorld expert that found them, or None.

    First ALFWorld's handcoded expert, whose walkthroughs search the room as the
    official ones do; when it fails, ALFWorld's planner expert (fast-downward, with full
    knowledge of the room). Pick-two games go to the planner directly: the handcoded
    expert of alfworld 0.4.2 loses track of its inventory after "move X to Y", so it
    can rarely place the second object. Either way the commands are played through the
    engine and must win."""
    if task_type != "pick_two_obj_and_place":
        commands = _play_handcoded_expert(game_file, seed)
        if commands:
            return commands, "handcoded"
    commands = _play_planner_expert(game_file)
    return (commands, "planner") if commands else None


def _play_handcoded_expert(game_file: Path, seed: int) -> list[str] | None:
    """The expert breaks ties with the `random` module, so it is seeded here (and the
    module's state restored after) to make the walkthrough the same on every machine."""
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredExpert, AlfredInfos
    from textworld.envs import PddlEnv

    with planner_reuse():
        env = PddlEnv(textworld.EnvInfos(admissible_commands=True, won=True, extras=["gamefile"]))
    env = AlfredExpert(AlfredInfos(AlfredDemangler(env, shuffle=False)), expert_type="handcoded")
    saved = random.getstate()
    random.seed(f"alfworld-expert:{seed}")
    try:
        with fast_downward_guard():
            env.load(str(game_file))
            state = env.reset()
        done, commands = False, []
        while not done and len(commands) < EXPERT_MAX_STEPS:
            commands.append(state["extra.expert_plan"][0])
            state, _, done = env.step(commands[-1])
        return commands if state["won"] else None
    except Exception:  # the expert gives up by raising (timeout, lost track): not solved by it
        return None
    finally:
        random.setstate(saved)
        close_engine(env)


def _play_planner_expert(game_file: Path) -> list[str] | None:
    """What ALFWorld's `AlfredExpert(expert_type="planner")` plays: the engine's plan."""
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
    from textworld.envs import PddlEnv

    with planner_reuse():
        pddl = PddlEnv(textworld.EnvInfos(admissible_commands=True, won=True, policy_commands=True))
    env = AlfredDemangler(pddl, shuffle=False)
    try:
        with fast_downward_guard():
            env.load(str(game_file))
            state = env.reset()
        plan = list(state["policy_commands"] or [])
        pddl.request_infos.policy_commands = False  # one plan is enough: no replanning at each step
        for command in plan:
            state, _, done = env.step(command)
        return plan if plan and state["won"] else None
    finally:
        close_engine(env)


@dataclass(frozen=True)
class SyntheticGames:
    task_type: str  # ALFWorld's name, e.g. "pick_heat_then_place_in_recep"
    family: str = "alfworld"

    def key(self) -> str:
        return f"{self.task_type}-v{GENERATOR_VERSION}-alfworld{alfworld_version()}"

    def build(self, seed: int, out_dir: Path) -> dict[str, Any]:
        domain, grammar = logic_files()
        for attempt in range(ATTEMPTS):
            try:
                problem = make_problem(self.task_type, seed, attempt)
            except Infeasible:
                continue
            game = {"pddl_domain": domain, "grammar": grammar.replace("UNKNOWN GOAL", problem.goal_text),
                    "pddl_problem": problem.pddl, "solvable": None, "walkthrough": None}
            (out_dir / GAME_FILE).write_text(json.dumps(game))
            (out_dir / TRAJ_FILE).write_text(json.dumps(problem.traj_data(), indent=1))
            solved = solve(out_dir / GAME_FILE, self.task_type, seed)
            if solved is None:
                continue
            walkthrough, expert = solved
            (out_dir / GAME_FILE).write_text(json.dumps({**game, "solvable": True, "walkthrough": walkthrough}))
            return {"walkthrough": walkthrough, "expert": expert, "max_score": 1.0, "goal": problem.goal_text,
                    "task_type": self.task_type, "scene": problem.scene, "seed": seed, "attempt": attempt,
                    "source": "synthetic", "alfworld": alfworld_version()}
        raise AgentHubError(f"no solvable {self.task_type} game for seed {seed} in {ATTEMPTS} attempts")


@dataclass(frozen=True)
class OfficialGames:
    task_type: str
    root: str  # the data directory, so a different copy of the data gets its own cache
    family: str = "alfworld"

    def key(self) -> str:
        return f"official-{self.task_type}-{hashlib.sha1(self.root.encode()).hexdigest()[:8]}"

    def build(self, seed: int, out_dir: Path) -> dict[str, Any]:
        split = OFFICIAL_SPLITS[min(seed // SPLIT_STRIDE, len(OFFICIAL_SPLITS) - 1)]
        games = official_games(self.root, split, self.task_type)
        if not games:
            raise AgentHubError(f"no solvable {self.task_type} games in {self.root}/json_2.1.1/{split}")
        source = Path(games[(seed % SPLIT_STRIDE) % len(games)])
        shutil.copy(source / GAME_FILE, out_dir / GAME_FILE)
        shutil.copy(source / TRAJ_FILE, out_dir / TRAJ_FILE)
        walkthrough = json.loads((source / GAME_FILE).read_text()).get("walkthrough")
        if not walkthrough:
            solved = solve(out_dir / GAME_FILE, self.task_type, seed)
            if solved is None:
                raise AgentHubError(f"ALFWorld's experts cannot solve {source}")
            walkthrough = solved[0]
        traj = json.loads((source / TRAJ_FILE).read_text())
        return {"walkthrough": walkthrough, "max_score": 1.0, "task_type": self.task_type, "seed": seed,
                "source": "official", "official_game": str(source), "split": split,
                "scene": traj.get("scene", {}).get("floor_plan")}


@lru_cache(maxsize=None)
def official_games(root: str, split: str, task_type: str) -> list[str]:
    """The solvable games of one task type in one split, sorted: seed i is always the same game."""
    games = []
    for game_file in sorted((Path(root) / "json_2.1.1" / split).glob(f"*/*/{GAME_FILE}")):
        folder = game_file.parent
        if "movable" in str(folder) or "Sliced" in str(folder):  # ALFWorld skips these too
            continue
        traj = json.loads((folder / TRAJ_FILE).read_text())
        if traj.get("task_type") == task_type and json.loads(game_file.read_text()).get("solvable"):
            games.append(str(folder))
    return games
