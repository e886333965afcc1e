"""The ALFWorld family on the real alfworld package: games generated offline from the
packaged layouts and checked by ALFWorld's expert, played by ALFWorld's text engine;
determinism, the invalid-action flag, the official-data path, the oracle and the
random agent. ALFWorld steps are slow (about 25/s): one game per task type."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("alfworld")

import agenthub  # noqa: E402
from agenthub.agents.oracle import OracleAgent  # noqa: E402
from agenthub.agents.random import RandomAgent  # noqa: E402
from agenthub.environments.alfworld.problems import TASK_TYPES  # noqa: E402
from agenthub.environments.textworld.cache import game_dir  # noqa: E402
from agenthub.runner import Episode, run_episodes  # noqa: E402
from agenthub.types import read_trajectories  # noqa: E402

HEAT = "alfworld/pick-heat-then-place-v0"


@pytest.fixture(scope="module", autouse=True)
def fresh_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENTHUB_CACHE", str(tmp_path_factory.mktemp("agenthub-cache")))
        mp.delenv("ALFWORLD_DATA", raising=False)
        mp.setenv("HOME", str(tmp_path_factory.mktemp("home")))  # no official data: synthetic games
        yield


def _test_task(name: str) -> agenthub.Task:
    return agenthub.load_suite(f"alfworld/{name}", "test", limit=1)[0]


def test_oracle_wins_a_held_out_game_of_every_task_type():
    import alfworld.gen.constants as constants

    tasks = [_test_task(name) for name in TASK_TYPES]
    runs = run_episodes([Episode(t.env_id, t.seed) for t in tasks], OracleAgent(), concurrency=1)
    assert [r.success for r in runs] == [True] * len(tasks), [r.error for r in runs]
    for task, run, task_type in zip(tasks, runs, TASK_TYPES.values()):
        first = run.turns[0].observation[1]["content"]
        assert "Your task is to:" in first and "Welcome" not in first
        folder = game_dir(agenthub.make(task.env_id).unwrapped.game_source(task.seed), task.seed)
        meta = json.loads((folder / "meta.json").read_text())
        game = json.loads((folder / "game.tw-pddl").read_text())
        assert game["solvable"] is True and game["walkthrough"] == meta["walkthrough"]
        assert json.loads((folder / "traj_data.json").read_text())["task_type"] == task_type
        assert int(meta["scene"].removeprefix("FloorPlan")) in constants.TEST_SCENE_NUMBERS  # unseen scenes
        assert len(run.turns) == len(meta["walkthrough"]) and run.turns[-1].reward_components["win"] == 1.0


PLAY_SCRIPT = textwrap.dedent("""
    import json, sys
    import agenthub
    env = agenthub.make(sys.argv[1])
    obs, info = env.reset(seed=int(sys.argv[2]))
    seen = [obs, info["admissible_actions"], env.oracle_actions()]
    for command in env.oracle_actions()[:5]:
        seen.append(env.step(command)[0])
    print(json.dumps(seen))
""")


def test_same_seed_gives_the_same_game_in_another_process(tmp_path):
    seed = _test_task("pick-heat-then-place").seed
    env = agenthub.make(HEAT)
    obs, info = env.reset(seed=seed)
    here = [obs, info["admissible_actions"], env.oracle_actions()]
    here += [env.step(command)[0] for command in env.oracle_actions()[:5]]
    out = subprocess.run([sys.executable, "-c", PLAY_SCRIPT, HEAT, str(seed)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "AGENTHUB_CACHE": str(tmp_path), "PYTHONHASHSEED": "7"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == here


def test_nothing_happens_is_flagged_as_an_invalid_action():
    env = agenthub.make(HEAT)
    obs, info = env.reset(seed=_test_task("pick-heat-then-place").seed)
    obs, reward, terminated, truncated, info = env.step("fly to the moon")
    assert obs[0]["content"].startswith("Nothing happens.")
    assert info["reward_components"] == {"score": 0.0, "win": 0.0, "invalid_action": 1.0}
    command = next(a for a in info["admissible_actions"] if a.startswith("go to"))
    obs, reward, terminated, truncated, info = env.step(command)
    assert obs[0]["content"].startswith("You arrive at") and info["reward_components"]["invalid_action"] == 0.0
    assert sys.argv[0] != "translate.py"  # fast-downward's argv rewrite was undone


def test_random_agent_is_recorded(tmp_path):
    task = _test_task("pick-and-place")
    out = tmp_path / "random.jsonl"
    run, = run_episodes([Episode(task.env_id, task.seed)], RandomAgent(seed=0), out=out)
    recorded, = read_trajectories(out)
    assert recorded.task_id == run.task_id and recorded.stop_reason in ("terminated", "max_turns")
    assert len(run.turns) <= run.turns[0].info["turn_limit"]
    assert all(turn.reward_components["invalid_action"] == 0.0 for turn in run.turns)  # it picks admissible ones


def test_all_v0_picks_the_task_type_by_seed_and_shares_the_games():
    task = _test_task("pick-cool-then-place")  # seed 10**9, and 10**9 % 6 == 4: the cool task
    mixed, single = agenthub.make("alfworld/all-v0"), agenthub.make("alfworld/pick-cool-then-place-v0")
    assert mixed.unwrapped.game_source(task.seed) == single.unwrapped.game_source(task.seed)
    assert mixed.reset(seed=task.seed)[0] == single.reset(seed=task.seed)[0]


def test_official_data_is_served_for_the_same_ids(tmp_path, monkeypatch):
    """An official-data layout (json_2.1.1/SPLIT/TASK-.../trial_.../game.tw-pddl +
    traj_data.json) in $ALFWORLD_DATA replaces the generated games."""
    task = _test_task("pick-heat-then-place")
    generated = agenthub.make(HEAT)
    first_obs, _ = generated.reset(seed=task.seed)
    source = game_dir(generated.unwrapped.game_source(task.seed), task.seed)
    for split in ("train", "valid_unseen"):
        trial = tmp_path / "json_2.1.1" / split / "pick_heat_then_place_in_recep-Egg-None-SinkBasin-1" / "trial_1"
        trial.mkdir(parents=True)
        for name in ("game.tw-pddl", "traj_data.json"):
            shutil.copy(source / name, trial / name)
    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path))
    env = agenthub.make(HEAT)
    assert env.unwrapped.official
    obs, info = env.reset(seed=task.seed)  # a test seed: valid_unseen
    assert obs == first_obs
    meta = json.loads((game_dir(env.unwrapped.game_source(task.seed), task.seed) / "meta.json").read_text())
    assert meta["source"] == "official" and meta["split"] == "valid_unseen"
    for action in env.oracle_actions():
        *_, info = env.step(action)
    assert info["success"]
    assert not agenthub.make(HEAT, data="synthetic").unwrapped.official
    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path / "empty"))
    with pytest.raises(agenthub.AgentHubError, match="no official ALFWorld data"):
        agenthub.make(HEAT, data="official")


def test_recap_takes_the_goal_from_the_end_of_the_opening():
    from agenthub.environments.alfworld.env import AlfworldEnv

    env = object.__new__(AlfworldEnv)  # the split needs no game
    opening = "You are in the middle of a room. You see a sink 1.\n\nYour task is to: put a clean cloth in bathtub."
    assert env._split_goal(opening) == ("Your task is to: put a clean cloth in bathtub.",
                                        "You are in the middle of a room. You see a sink 1.")
    assert env._split_goal("A room.\n\nNo task here.") == ("A room.", "No task here.")  # the default split
    # on the real engine: the goal first, stated once, the last command recalled
    task = _test_task("pick-heat-then-place")
    env = agenthub.make(task.env_id, recap=True)
    try:
        obs, _ = env.reset(seed=task.seed)
        first = obs[-1]["content"]
        assert first.startswith("Goal: Your task is to:") and first.count("Your task is to:") == 1
        assert "Commands so far: none yet" in first and "You are in the middle of a room" in first
        obs, *_ = env.step("look")
        assert obs[-1]["content"].startswith("Goal: Your task is to:")
        assert "Commands so far: look\n" in obs[-1]["content"]
    finally:
        env.close()
