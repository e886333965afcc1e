"""The TextWorld family on the real textworld package: generation and its cache,
determinism across processes, rewards, the invalid-action flag, the tool-call form,
the oracle and the random agent."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("textworld")

import agenthub  # noqa: E402
from agenthub.agents.oracle import OracleAgent  # noqa: E402
from agenthub.agents.random import RandomAgent  # noqa: E402
from agenthub.environments.textworld import pregenerate  # noqa: E402
from agenthub.environments.textworld.cache import game_dir  # noqa: E402
from agenthub.runner import Episode, run_episodes  # noqa: E402
from agenthub.types import read_trajectories  # noqa: E402

SMALL = "textworld/w2-o3-q4-v0"
DEMO = "textworld/w2-o3-q2to4-v0"


@pytest.fixture(scope="module", autouse=True)
def fresh_cache(tmp_path_factory):
    """Every game in this module is generated here, from nothing."""
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("agenthub-cache")
        mp.setenv("AGENTHUB_CACHE", str(root))
        yield root


def _play(env_id: str, seed: int, commands: list[str] | None = None, **kwargs):
    """Reset, then play `commands` (the oracle's by default); every observation and info."""
    env = agenthub.make(env_id, **kwargs)
    obs, info = env.reset(seed=seed)
    steps = [(obs, 0.0, False, False, info)]
    for command in (env.oracle_actions() if commands is None else commands):
        steps.append(env.step(command))
        if steps[-1][2] or steps[-1][3]:
            break
    env.close()
    return steps


PLAY_SCRIPT = textwrap.dedent("""
    import json, sys
    import agenthub
    env = agenthub.make(sys.argv[1])
    obs, info = env.reset(seed=int(sys.argv[2]))
    seen = [obs, info["admissible_actions"], env.oracle_actions()]
    for command in env.oracle_actions():
        obs, reward, terminated, truncated, info = env.step(command)
        seen.append([obs, reward, terminated, info["admissible_actions"]])
    print(json.dumps(seen))
""")


def test_same_id_and_seed_give_the_same_game_in_other_processes(tmp_path, fresh_cache):
    """Three processes build the same game at once: two into one cache (they race to
    publish it), one into its own cache. All three see identical games, and the shared
    cache holds one complete copy and no leftovers."""
    shared, alone = tmp_path / "shared", tmp_path / "alone"
    procs = [subprocess.Popen([sys.executable, "-c", PLAY_SCRIPT, SMALL, "11"], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "AGENTHUB_CACHE": str(cache),
                                              "PYTHONHASHSEED": str(i)})
             for i, cache in enumerate([shared, shared, alone])]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    seen = [json.loads(out) for out in outputs]
    assert seen[0] == seen[1] == seen[2]
    assert seen[0][-1][2] is True  # the walkthrough wins
    folder = next((shared / "textworld").iterdir())
    assert sorted(p.name for p in folder.iterdir()) == ["11"]
    assert sorted(p.name for p in (folder / "11").iterdir()) == ["game.json", "game.z8", "meta.json"]
    # ... and this process, with yet another cache, sees that game too.
    here = _play(SMALL, 11)
    assert [here[0][0], here[0][4]["admissible_actions"]] == seen[0][:2]


def test_a_second_make_reads_the_cache_instead_of_generating(fresh_cache):
    _play(SMALL, 21, commands=[])
    env = agenthub.make(SMALL)
    folder = game_dir(env.unwrapped.game_source(21), 21)
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}
    games_before = sorted(p.name for p in folder.parent.iterdir())
    obs, info = env.reset(seed=21)
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()} == before
    assert sorted(p.name for p in folder.parent.iterdir()) == games_before
    assert info["game_seed"] == 21 and json.loads((folder / "meta.json").read_text())["seed"] == 21


def test_first_observation_holds_goal_room_and_admissible_commands():
    (obs, _, _, _, info), *_ = _play(SMALL, 11, commands=[])
    system, user = obs
    assert system["role"] == "system" and user["role"] == "user"
    text = user["content"]
    assert "$$" not in text and "RESTART" not in text and not text.rstrip().endswith(">")  # banner and prompt gone
    assert "-= " in text  # the room
    assert text.endswith("Admissible commands: " + ", ".join(info["admissible_actions"]))
    assert info["max_reward"] == 1.0 and info["turn_limit"] == 2 * info["walkthrough_length"]
    quiet = _play(SMALL, 11, commands=[], show_admissible=False)[0][0][1]["content"]
    assert "Admissible commands" not in quiet and quiet in text



def test_recap_observations_restate_goal_last_commands_and_admissible_commands():
    plain = _play(SMALL, 11, commands=[])[0][0][1]["content"]
    steps = _play(SMALL.replace("-v0", "-recap-v0"), 11, commands=["look", "restart", "inventory", "look", "look",
                                                                    "inventory"])
    goal = plain.split("\n\n")[0]
    for k, (obs, _, terminated, _, info) in enumerate(steps):
        text = obs[-1]["content"]
        head, _, rest = text.partition("\n\n")
        played = ["look", "restart", "inventory", "look", "look", "inventory"][:k][-5:]  # the last five
        assert head == f"Goal: {goal}\nCommands so far: {' | '.join(played) or 'none yet'}"
        # one admissible command per line: each starts a line, as the model's reply starts its turn
        assert text.endswith("\n\nAdmissible commands:\n" + "\n".join(info["admissible_actions"]))
        assert goal not in rest  # stated once
    assert "-= " in steps[0][0][-1]["content"] and "is not available here" in steps[2][0][-1]["content"]
    # a runaway command is recapped cut short, so it cannot grow every later observation
    flood = _play(SMALL.replace("-v0", "-recap-v0"), 11, commands=["x" * 5000, "look"])
    assert "x" * 60 + "... | look" in flood[2][0][-1]["content"] and len(flood[2][0][-1]["content"]) < len(plain) + 400
    # the same games as the plain suite, and the oracle still wins them
    recap = agenthub.load_suite("textworld/w2-o3-q2to4-recap", "test", limit=2)
    assert [t.seed for t in recap] == [t.seed for t in agenthub.load_suite("textworld/w2-o3-q2to4", "test", 2)]
    runs = run_episodes([Episode(t.env_id, t.seed) for t in recap], OracleAgent(), concurrency=1)
    assert all(r.success for r in runs)


def test_oracle_wins_every_test_task_and_random_agent_is_recorded(tmp_path):
    tasks = agenthub.load_suite("textworld/w2-o3-q2to4", "test", limit=3) + \
        agenthub.load_suite("textworld/w2-o3-q4", "test", limit=2)
    assert all(t.seed >= 10**9 for t in tasks)  # test seeds, disjoint from train seeds
    episodes = [Episode(t.env_id, t.seed) for t in tasks]
    oracle = run_episodes(episodes, OracleAgent(), concurrency=2)
    assert [t.success for t in oracle] == [True] * len(tasks), [t.error for t in oracle]
    assert all(t.turns[-1].reward_components["win"] == 1.0 for t in oracle)

    out = tmp_path / "random.jsonl"
    random_runs = run_episodes(episodes, RandomAgent(seed=1), concurrency=2, out=out)
    recorded = read_trajectories(out)
    assert len(recorded) == len(tasks) and all(t.stop_reason in ("terminated", "max_turns") for t in recorded)
    for t in random_runs:
        limit = t.turns[0].info["turn_limit"]
        assert len(t.turns) <= limit and (t.stop_reason == "terminated" or len(t.turns) == limit)
        assert all(set(turn.reward_components) == {"score", "win", "invalid_action"} for turn in t.turns)


def test_dense_and_sparse_rewards():
    dense = _play("textworld/tw-simple-v0", 5)
    sparse = _play("textworld/tw-simple-v0", 5, rewards="sparse")
    dense_rewards = [r for _, r, *_ in dense[1:]]
    sparse_rewards = [r for _, r, *_ in sparse[1:]]
    max_reward = dense[0][4]["max_reward"]
    assert max_reward > 1 and sum(dense_rewards) == max_reward
    assert sum(r > 0 for r in dense_rewards) > 1  # several turns score, not only the last
    assert sparse_rewards == [0.0] * (len(sparse_rewards) - 1) + [1.0]
    # The components are the same in both modes: reward modules can recombine them.
    assert [s[4]["reward_components"] for s in dense[1:]] == [s[4]["reward_components"] for s in sparse[1:]]
    assert [s[4]["reward_components"]["score"] for s in dense[1:]] == dense_rewards
    final = dense[-1][4]
    assert final["success"] is True and final["outcome"] == 1.0 and final["score"] == max_reward


def test_invalid_commands_are_flagged_and_meta_commands_refused():
    steps = _play(SMALL, 11, commands=["dance wildly", "restart", "Look.", "look"])
    flags = [s[4]["reward_components"]["invalid_action"] for s in steps[1:]]
    assert flags == [1.0, 1.0, 0.0, 0.0]  # "Look." is normalised to the admissible "look"
    assert "not available" in steps[2][0][0]["content"]
    assert steps[3][0] == steps[4][0]  # the game was not restarted behind the env's back


def test_control_characters_never_reach_the_engine():
    # chars 14-21 made frotz (the Z-machine under jericho) write past a stack buffer and kill
    # the whole process, found by an RL policy that sampled "... bits on\x13"
    env = agenthub.make(DEMO)
    for code in [*range(32), 127]:
        env.reset(seed=1123)  # the turn limit would end one episode before the last code
        obs, _, terminated, truncated, info = env.step(f"look{chr(code)}")
        whitespace = chr(code).isspace()  # collapsed with the other spaces: "look" is admissible
        assert info["reward_components"]["invalid_action"] == (0.0 if whitespace else 1.0), code
        assert whitespace or obs[-1]["content"].startswith("That is not a command I understand."), code
        assert not terminated
    assert "Admissible commands" in env.step("look")[0][-1]["content"]  # the game plays on
    env.close()


def test_unseeded_resets_move_on_once_a_game_is_played():
    env = agenthub.make(SMALL)
    assert env.reset()[1]["game_seed"] == 0
    assert env.reset(seed=11)[1]["game_seed"] == 11
    assert env.reset()[1]["game_seed"] == 11  # not played yet: the same game again
    env.step("look")
    assert env.reset()[1]["game_seed"] == 12
    env.close()


def test_tool_call_form():
    env = agenthub.make(SMALL, tool_mode=True)
    assert [t["function"]["name"] for t in env.tools] == ["act"]
    obs, info = env.reset(seed=11)
    assert "act" in obs[0]["content"]
    plan = env.oracle_actions()
    assert all(a["tool_calls"][0]["function"]["name"] == "act" for a in plan)
    for action in plan:
        obs, reward, terminated, truncated, info = env.step(action)
        assert obs[0]["role"] == "tool" and obs[0]["tool_call_id"] == action["tool_calls"][0]["id"]
    assert terminated and info["success"]
    env.reset(seed=11)
    text_call = '<tool_call>{"name": "act", "arguments": {"command": "look"}}</tool_call>'
    obs, *_, info = env.step(text_call)
    assert obs[0]["role"] == "tool" and info["reward_components"]["invalid_action"] == 0.0
    obs, *_, info = env.step({"role": "assistant", "content": "", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "act", "arguments": "{}"}}]})
    assert "missing required" in info["action_error"]


def test_pregenerate_builds_in_worker_processes_and_skips_cached_games(fresh_cache):
    built = pregenerate(DEMO, [3, 4], processes=2, progress=False)
    assert built == 2
    env = agenthub.make(DEMO)
    for seed in (3, 4):
        assert (game_dir(env.unwrapped.game_source(seed), seed) / "game.z8").is_file()
    assert pregenerate(DEMO, [3, 4], processes=2, progress=False) == 0
    for seed in (3, 4):  # the seed picks the quest length, 2 + seed % 3
        meta = json.loads((game_dir(env.unwrapped.game_source(seed), seed) / "meta.json").read_text())
        assert meta["settings"]["quest_length"] == 2 + seed % 3


def test_bad_settings_are_one_line_errors():
    with pytest.raises(agenthub.AgentHubError, match="rewards must be one of"):
        agenthub.make(SMALL, rewards="shaped")
    with pytest.raises(agenthub.AgentHubError, match="unknown TextWorld challenge"):
        agenthub.make(SMALL, challenge="tw-nope")


def test_play_by_hand(cli, fresh_cache):
    result = cli("play", SMALL, "--seed", "11", input="look\n", env={"AGENTHUB_CACHE": str(fresh_cache)})
    assert result.returncode == 0, result.stderr
    assert "Admissible commands:" in result.stdout and "-= " in result.stdout


def test_containerised_env_gives_the_same_episode(docker_image):
    """`sandbox="docker"`: the env server runs in the TextWorld image and generates the
    game there, from nothing; the episode is the one played in-process."""
    here = _play(SMALL, 11)
    env = agenthub.make(SMALL, sandbox="docker")
    try:
        obs, info = env.reset(seed=11)
        there = [(obs, 0.0, False, False, info)] + [env.step(a) for a in env.oracle_actions()]
    finally:
        env.close()
    assert [s[:4] for s in there] == [s[:4] for s in here]
    assert [s[4]["admissible_actions"] for s in there] == [s[4]["admissible_actions"] for s in here]
    assert there[-1][4]["success"] is True
