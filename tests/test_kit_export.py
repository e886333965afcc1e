"""`agenthub export` (issue 17, item 6): trajectories and suites as Hugging Face datasets
that `datasets.load_from_disk` reads back with the same content."""

from __future__ import annotations

import json
import math

import pytest

import agenthub
from agenthub.actions import valid_text
from agenthub.agents import CallableAgent, load_agent
from agenthub.runner import Episode, run_episodes
from agenthub.types import Trajectory, Turn, content_text, write_trajectories

from agenthub.cli import main
from conftest import run_cli

datasets = pytest.importorskip("datasets", reason="agenthub export needs the `datasets` extra")


def _odd_trajectories() -> list[Trajectory]:
    """Hand-made episodes with the shapes that break naive exports: null and list
    content, lone surrogates, NUL, NaN rewards, components that differ per turn, a
    call with dict arguments, no turns at all, no seed."""
    calls = [{"id": "c1", "type": "function", "function": {"name": "guess", "arguments": {"number": 3}}}]
    turns = [
        Turn([{"role": "system", "content": None}, {"role": "user", "content": [{"type": "text", "text": "a"},
                                                                               {"type": "text", "text": "b"}]}],
             {"role": "assistant", "content": "\ud83d half an emoji\x00", "reasoning": "<think>x"},
             reward=float("nan"), reward_components={"progress": 0.5}),
        Turn([{"role": "user", "content": "next"}], {"role": "assistant", "content": None, "tool_calls": calls},
             reward=1.0, reward_components={"win": 1.0, "malformed_action": 0.0}),
    ]
    return [
        Trajectory("tools/guess-number-v0", "t:odd", None, "hand", turns, outcome=float("inf"), success=True,
                   final_observation=[{"role": "tool", "tool_call_id": "c1", "content": "3: correct"}]),
        Trajectory("tools/guess-number-v0", "t:empty", 5, "hand", [], stop_reason="error", error="env: boom"),
    ]


def _played_trajectories() -> list[Trajectory]:
    """Real episodes from the runner: the oracle's, and a garbage agent's."""
    oracle = run_episodes([Episode("tools/guess-number-v0", s) for s in (0, 1)], load_agent("oracle"), concurrency=1)
    junk = iter(["<|im_end|>", {"role": "assistant", "content": None, "tool_calls": [{"id": "x"}]}, "\udc00", 7])
    garbage = run_episodes([Episode("tools/guess-number-v0", 2)],
                           CallableAgent(lambda m, ctx: next(junk, "32"), "junk"), concurrency=1)
    return oracle + garbage


def _same_text(exported, original) -> bool:
    if original is None:
        return exported is None
    text = original if isinstance(original, str) else content_text(original)[0]
    return exported == valid_text(text)


def _assert_row_matches(row: dict, t: Trajectory) -> None:
    assert (row["env_id"], row["task_id"], row["seed"], row["agent"]) == (t.env_id, t.task_id, t.seed, t.agent)
    assert row["success"] == t.success and row["stop_reason"] == t.stop_reason and row["error"] == t.error
    assert row["num_turns"] == len(t.turns)
    for got, want in [(row["outcome"], t.outcome), (row["return"], t.return_)] + \
            list(zip(row["rewards"], [turn.reward for turn in t.turns], strict=True)):
        assert got == want or (math.isnan(got) and math.isnan(want))
    messages = t.messages()
    assert len(row["messages"]) == len(messages)
    for got, want in zip(row["messages"], messages):
        assert got["role"] == want["role"] and _same_text(got["content"], want.get("content"))
        assert _same_text(got["reasoning"], want.get("reasoning"))
        assert got["tool_call_id"] == want.get("tool_call_id")
        want_calls = want.get("tool_calls")
        if want_calls is None:
            assert got["tool_calls"] is None
        else:
            assert [(c["id"], c["function"]["name"]) for c in got["tool_calls"]] == \
                [(c.get("id"), c.get("function", {}).get("name")) for c in want_calls]
            for c, w in zip(got["tool_calls"], want_calls):
                args = w.get("function", {}).get("arguments")
                assert c["function"]["arguments"] == (args if isinstance(args, str) or args is None
                                                      else json.dumps(args))
    for k, turn in enumerate(t.turns):  # each turn's action sits where action_indices says
        assert row["messages"][row["action_indices"][k]]["role"] == turn.action["role"]
        components = {n: v for n, v in row["reward_components"][k].items() if v is not None}
        assert components == turn.reward_components


def test_trajectories_export_and_load_back(tmp_path):
    trajectories = _played_trajectories() + _odd_trajectories()
    src = tmp_path / "trajectories.jsonl"
    write_trajectories(src, trajectories)
    out = run_cli("export", str(src), "--to", str(tmp_path / "ds"))
    assert out.returncode == 0, out.stderr
    assert "rows 5" in out.stdout

    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert len(ds) == len(trajectories)
    assert {"messages", "rewards", "reward_components", "outcome", "success", "stop_reason", "env_id",
            "task_id"} <= set(ds.column_names)
    read_back = agenthub.read_trajectories(src)  # compare with what the file holds
    for row, t in zip(ds, read_back):
        _assert_row_matches(row, t)
    assert ds[0]["success"] is True and ds[2]["success"] is False
    assert "tool_calls" in json.dumps(ds[0]["messages"]) and ds[0]["messages"][2]["tool_calls"][0]["function"]["name"] \
        == "guess"
    odd = ds[3]
    assert odd["messages"][1]["content"] == "ab" and odd["messages"][0]["content"] is None
    assert odd["messages"][2]["content"] == "\ufffd half an emoji\ufffd"  # Arrow stores valid UTF-8 only


def _export(capsys, *args: str) -> tuple[int, str]:
    """`agenthub export ARGS` in this process (the CLI's own entry): exit code, stderr."""
    code = main(["export", *args])
    return code, capsys.readouterr().err


def test_corrupt_line_is_one_clear_line_or_skipped(tmp_path, capsys):
    src = tmp_path / "t.jsonl"
    write_trajectories(src, _odd_trajectories())
    lines = src.read_text().splitlines(keepends=True)
    bad_lines = ['{"env_id": "x"\n', "[1, 2]\n", '{"env_id": 1, "task_id": "t", "seed": 0, "agent": "a"}\n']
    for k, bad in enumerate(bad_lines):
        path = tmp_path / f"bad{k}.jsonl"
        path.write_text(lines[0] + bad + lines[1])
        code, err = _export(capsys, str(path), "--to", str(tmp_path / f"ds{k}"))
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"{path}:2:" in err and "--skip-invalid" in err
        assert not (tmp_path / f"ds{k}").exists()
        code, err = _export(capsys, str(path), "--to", str(tmp_path / f"ds{k}"), "--skip-invalid")
        assert code == 0 and "skipped 1 invalid line" in err, err
        assert len(datasets.load_from_disk(str(tmp_path / f"ds{k}"))) == 2


@pytest.mark.parametrize("args, message", [
    (["missing.jsonl"], "cannot read"),
    (["suite:no/such-suite"], "unknown suite"),
    (["suite:tools/guess-number:nosplit"], "has no split 'nosplit'"),
    (["suite:"], "write suite:NAME[:SPLIT]"),
    (["suite:tools/guess-number:test", "--limit", "0"], "--limit must be at least 1"),
])
def test_user_mistakes_are_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, err = _export(capsys, *args, "--to", str(tmp_path / "ds"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_refuses_a_non_empty_directory(tmp_path, capsys):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("mine")
    code, err = _export(capsys, "suite:tools/guess-number:test", "--to", str(tmp_path / "ds"))
    assert code == 2 and "not empty" in err
    assert (tmp_path / "ds" / "keep.txt").read_text() == "mine"


def test_suite_split_exports_its_task_list(tmp_path, capsys):
    pytest.importorskip("textworld")
    code, err = _export(capsys, "suite:textworld/w2-o3-q4:test", "--to", str(tmp_path / "ds"))
    assert code == 0, err
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    tasks = agenthub.load_suite("textworld/w2-o3-q4", split="test")
    assert [(r["env_id"], r["seed"], r["task_id"], r["split"]) for r in ds] == \
        [(t.env_id, t.seed, t.task_id, "test") for t in tasks]
    assert set(ds["suite"]) == {"textworld/w2-o3-q4"}


def test_suite_without_split_is_a_dataset_dict_and_prompts_match_reset(tmp_path, capsys):
    code, err = _export(capsys, "suite:tools/guess-number", "--to", str(tmp_path / "all"), "--limit", "4")
    assert code == 0, err
    dd = datasets.load_from_disk(str(tmp_path / "all"))
    suite = agenthub.suites.get_suite("tools/guess-number")
    assert set(dd) == set(suite.sizes)
    for split, ds in dd.items():
        assert list(ds["seed"]) == [t.seed for t in suite.tasks(split, 4)]
    assert not set(dd["train"]["seed"]) & set(dd["test"]["seed"])

    code, err = _export(capsys, "suite:tools/guess-number:test", "--to", str(tmp_path / "p"), "--limit", "3",
                        "--prompts")
    assert code == 0, err
    ds = datasets.load_from_disk(str(tmp_path / "p"))
    env = agenthub.make("tools/guess-number-v0")
    try:
        for row in ds:
            obs, _ = env.reset(seed=row["seed"])
            assert [(m["role"], m["content"]) for m in row["prompt"]] == [(m["role"], m["content"]) for m in obs]
            assert json.loads(row["tools"]) == env.tools
    finally:
        env.close()
