"""TextWorld: out-of-game commands (restart, undo, save, transcripts, TextWorld's own
instrumentation) are refused wherever they sit in a chained command, and the env's
world model never drifts from the story's (issue 14, item 3).

The story's own view of the world is read with TextWorld's `print_state` command, run
on a snapshot of the Z-machine and rolled back, so checking never changes the game;
the env's view is the state TextWorld tracks in Python, from which the admissible
commands are derived. Real TextWorld games throughout."""

from __future__ import annotations

import os
import re

import pytest

pytest.importorskip("textworld")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import agenthub  # noqa: E402
from agenthub.environments.textworld.meta_commands import (  # noqa: E402
    INFORM_META, META_FORMS, TEXTWORLD_META, commands_in, dictionary_form, meta_command)

SMALL = "textworld/w2-o3-q4-v0"
EXAMPLES = int(os.environ.get("AGENTHUB_HYPOTHESIS_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def env():
    env = agenthub.make(SMALL)
    yield env
    env.close()


# -- the two views of the world ------------------------------------------------------------

def story_world(env) -> tuple[str, dict[str, str], dict[str, set[str]]]:
    """The story's own state: (player's room, {thing: what holds it}, {thing: open/closed/locked}),
    from `print_state` on a snapshot of the Z-machine (rolled back afterwards)."""
    jericho = env.unwrapped._engine.unwrapped._jericho
    snapshot = jericho.get_state()
    text = jericho.step("print_state")[0]
    jericho.set_state(snapshot)
    world = text.split("World:", 1)[1].split("You are carrying:", 1)[0]
    holders: dict[str, str] = {}
    props: dict[str, set[str]] = {}
    room, stack = "", []  # stack: (indent, name) of the things above the current line
    for line in world.splitlines():
        if not line.strip() or line.strip() == "nothing":
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:  # "kitchen:" starts a room's listing
            room, stack = line.strip().rstrip(":"), [(-1, line.strip().rstrip(":"))]
            continue
        if not room:  # the list of rooms before the first listing
            continue
        match = re.fullmatch(r"(?:(?:a|an|some|the) )?(.+?)(?: \((.*)\))?", line.strip())
        name, tags = match.group(1), match.group(2) or ""
        while stack and stack[-1][0] >= indent:
            stack.pop()
        holders[name] = stack[-1][1]
        props[name] = {t for t in tags.split(" and ") if t in ("open", "closed", "locked")}
        stack.append((indent, name))
    return holders.pop("yourself"), holders, props


def tracked_world(env) -> tuple[str, dict[str, str], dict[str, set[str]]]:
    """The same, from the state TextWorld tracks in Python (what the admissible list comes from)."""
    engine = env.unwrapped._engine
    infos = engine._game.infos
    name = {**{k: (v.name or k) for k, v in infos.items()}, "P": "yourself", "I": "yourself"}
    room, holders, props = "", {}, {}
    for fact in engine._game_progression.state.facts:
        args = [name[a.name] for a in fact.arguments]
        if fact.name == "at" and fact.arguments[0].name == "P":
            room = args[1]
        elif fact.name in ("at", "in", "on"):
            holders[args[0]] = args[1]
        elif fact.name in ("open", "closed", "locked"):
            props.setdefault(args[0], set()).add(fact.name)
    return room, holders, props


def world_mismatch(env) -> str | None:
    """How the story's world and the tracked one differ (doors aside: the story lists a
    door in one of its two rooms), or None when they agree."""
    doors = {v.name for v in env.unwrapped._engine._game.infos.values() if v.type == "d"}
    game_room, game_holders, game_props = story_world(env)
    room, holders, props = tracked_world(env)
    game = (game_room, {k: v for k, v in game_holders.items() if k not in doors},
            {k: v for k, v in game_props.items() if v})
    tracked = (room, {k: v for k, v in holders.items() if k not in doors}, props)
    return None if game == tracked else f"story: {game}\ntracked: {tracked}"


def assert_no_drift(env, info) -> None:
    """The env's admissible list is the tracker's, and the tracker agrees with the story."""
    assert world_mismatch(env) is None, world_mismatch(env)
    assert info["admissible_actions"] == env.unwrapped._engine.state["admissible_commands"]


def _walk_in(env, seed: int = 2, steps: int = 3):
    """The issue's position: `steps` walkthrough commands into game `seed`."""
    obs, info = env.reset(seed=seed)
    for command in env.oracle_actions()[:steps]:
        obs, _, _, _, info = env.step(command)
    return obs, info


# -- the example and its variants ----------------------------------------------------

def test_restart_in_a_chain_is_refused_and_the_game_stays_in_step(env):
    _walk_in(env)
    obs, _, terminated, _, info = env.step("look. restart")
    assert obs[-1]["content"].startswith("Error:") and "'restart'" in obs[-1]["content"]
    assert not terminated and info["reward_components"]["invalid_action"] == 1.0
    env.step("yes")
    obs, _, _, _, info = env.step("inventory")
    assert "latchkey" in obs[-1]["content"]  # not restarted: the key is still carried
    assert "drop latchkey" in info["admissible_actions"]
    assert_no_drift(env, info)
    # ... and the game goes on to be won.
    obs, reward, terminated, _, info = env.step("unlock box with latchkey")
    assert terminated and info["success"] is True


CHAINED = [
    "look. restart", "look.restart", "look .restart", "look,restart", "look , quit", "look then restart",
    "LOOK. RESTART", "  look  ;  Restart  ", "look and restart", "look then undo", "examine box. undo",
    "look. . restart", "look! restore", "look? save", 'look" restart', "look: script",
    "restart", "Restart.", "q", "QUIT", "undo", "oops restart", "o restart", "verbose", "brief", "superbrief",
    "superbriefing", "short", "score", "full score", "notify off", "transcripts", "script on", "version",
    "verify", "pronouns", "tw-extra-infos score", "tw-extra-infosxx description", "tw-trace-actions",
    "tw-print max_score", "print_state", "enable print state option", "restrict commands", "purloin latchkey",
    "examine basket, then restore",
]


@pytest.mark.parametrize("command", CHAINED)
def test_out_of_game_commands_are_refused_anywhere_in_a_chain(env, command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `script` would write its transcript here
    _, info = _walk_in(env)
    before = story_world(env)
    obs, _, terminated, truncated, after = env.step(command)
    assert obs[-1]["content"].startswith("Error:"), obs[-1]["content"]
    assert story_world(env) == before  # nothing reached the story
    assert after["admissible_actions"] == info["admissible_actions"]
    obs, _, _, _, info = env.step("yes")  # would confirm a restart or quit
    assert_no_drift(env, info)
    assert list(tmp_path.iterdir()) == []


def test_every_verb_the_story_knows_keeps_the_world_in_step(env, tmp_path, monkeypatch):
    """Whatever the story's dictionary holds (and the parser's own words): the env refuses
    it, or it runs and the tracked world still matches the story's, and no file appears."""
    monkeypatch.chdir(tmp_path)
    env.reset(seed=2)
    jericho = env.unwrapped._engine.unwrapped._jericho
    verbs = sorted({w.word for w in jericho.get_dictionary() if w.is_verb} | {"again", "g", "undo", "oops", "o"})
    assert len(verbs) > 100
    dictionary = {w.word for w in jericho.get_dictionary()}
    # the lists name what this engine really accepts
    assert {dictionary_form(w) for w in ("restart", "restore", "save", "quit", "undo", "superbrief", "transcript",
                                         "tw-extra-infos", "print_state", "restrict")} <= dictionary
    refused = []
    for verb in verbs:
        _walk_in(env)
        obs, _, _, _, info = env.step(verb)
        if obs[-1]["content"].startswith("Error:"):
            refused.append(verb)
            continue
        obs, _, _, _, info = env.step("yes")
        assert_no_drift(env, info)
        assert list(tmp_path.iterdir()) == [], verb
    assert {"restart", "restore", "save", "quit", "q", "undo", "oops", "script", "transcrip", "superbrie",
            "verbose", "tw-extra", "tw-trace", "tw-print", "print_st"} <= set(refused)
    assert not {"take", "drop", "open", "look", "inventory", "examine", "go", "unlock", "put", "insert",
                "eat", "again", "g"} & set(refused)


def test_dictionary_forms_and_clauses():
    assert dictionary_form("superbriefing") == dictionary_form("superbrief") == "superbrie"
    assert dictionary_form("tw-extra-infosxx") == "tw-extra"
    assert dictionary_form("print_state") == "print_st"
    assert dictionary_form("RESTART") == "restart" and dictionary_form("restarting") == "restartin"
    assert meta_command("look. restart") == "restart"
    assert meta_command("open the box then Score") == "score"
    assert meta_command("take restart key") is None  # a noun, not a verb: the story decides
    assert meta_command("restarting") is None
    assert all(dictionary_form(w) in META_FORMS for w in INFORM_META + TEXTWORLD_META)
    assert commands_in("look. open box") == ["look", "open box"]
    assert commands_in("x box, then take key from box.") == ["x box", "take key from box"]
    assert commands_in("take key and apple") == ["take key and apple"]  # one command, two objects


@pytest.mark.parametrize("line", ["inventory, close basket", "open basket. take latchkey from basket",
                                  "look then close basket", "examine box,examine basket"])
def test_several_commands_in_one_line_are_refused(env, line):
    """The story would run them all, and TextWorld's tracking misses some of them
    (hypothesis found `inventory, close cabinet`: closed in the story, open in the tracked
    state), so one line is one command."""
    _walk_in(env, steps=2)  # in the bedchamber, the basket open
    before = story_world(env)
    obs, _, _, _, info = env.step(line)
    assert obs[-1]["content"].startswith("Error: one command per turn")
    assert story_world(env) == before
    assert_no_drift(env, info)


def test_no_in_game_command_is_refused():
    """Every admissible command and walkthrough step of a sample of games passes."""
    seen = set()
    for env_id, seeds in ((SMALL, range(4)), ("textworld/w4-o6-q8-v0", range(1))):
        game = agenthub.make(env_id)
        for seed in seeds:
            _, info = game.reset(seed=seed)
            for command in game.oracle_actions():
                seen |= set(info["admissible_actions"]) | {command}
                _, _, terminated, _, info = game.step(command)
            assert terminated and info["success"]
        game.close()
    assert len(seen) > 30
    assert [c for c in seen if meta_command(c)] == []


# -- the invariant, under arbitrary play -----------------------------------------------------

SEPARATORS = [". ", ".", ",", " , ", " then ", " and ", "; ", " ", "! "]
META_WORDS = ["restart", "undo", "restore", "save", "quit", "q", "oops", "superbrief", "script",
              "tw-extra-infos score", "print_state", "restrict commands", "score"]


@st.composite
def commands(draw, admissible: list[str]) -> str:
    kind = draw(st.sampled_from(["admissible", "admissible", "two", "chain", "meta", "noise"]))
    if kind == "admissible":
        return draw(st.sampled_from(admissible))
    if kind == "two":  # two in-game commands in one line: both run, and both must be tracked
        return draw(st.sampled_from(admissible)) + draw(st.sampled_from([". ", " then ", ", "])) + \
            draw(st.sampled_from(admissible))
    if kind == "noise":
        return draw(st.sampled_from(["yes", "no", "g", "again", "wait", "xyzzy", "take all", "look", "inventory",
                                     "drop everything", "put it on the floor", "oops"]))
    meta = draw(st.sampled_from(META_WORDS))
    meta = draw(st.sampled_from([meta, meta.upper(), meta.title(), f"  {meta} "]))
    if kind == "meta":
        return meta
    first = draw(st.sampled_from(admissible))
    separator = draw(st.sampled_from(SEPARATORS))
    return draw(st.sampled_from([first + separator + meta, meta + separator + first]))


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), seed=st.sampled_from([2, 5, 11]))
def test_admissible_list_never_drifts_from_the_game(env, data, seed):
    _, info = env.reset(seed=seed)
    for _ in range(10):
        command = data.draw(commands(info["admissible_actions"]))
        _, _, terminated, truncated, info = env.step(command)
        assert_no_drift(env, info)
        if terminated or truncated:
            break


def test_alfworld_has_no_out_of_game_commands():
    """ALFWorld's engine (TextWorld's PDDL env) runs only admissible commands: the same
    commands do nothing there and leave the admissible list as it was."""
    pytest.importorskip("alfworld")
    game = agenthub.make("alfworld/pick-and-place-v0")
    try:
        _, info = game.reset(seed=0)
        for command in ["look. restart", "restart", "undo", "quit", "save", "superbrief", "tw-extra-infos score"]:
            obs, _, terminated, _, after = game.step(command)
            assert "Nothing happens" in obs[-1]["content"] and not terminated
            assert after["admissible_actions"] == info["admissible_actions"]
    finally:
        game.close()
