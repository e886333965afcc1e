import json

from agenthub.types import Trajectory, TrajectoryWriter, Turn, read_trajectories


def _traj(i: int) -> Trajectory:
    turn = Turn(observation=[{"role": "user", "content": "hi"}],
                action={"role": "assistant", "content": "", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "guess", "arguments": '{"number": 3}'}}]},
                reward=0.5, reward_components={"progress": 0.5}, terminated=True, info={"success": True},
                token_ids=[1, 2, 3], logprobs=[-0.1, -0.2, -0.3], timings={"act_s": 0.1})
    return Trajectory("tools/guess-number-v0", f"t{i}", i, "oracle", [turn], outcome=1.0, success=True,
                      final_observation=[{"role": "tool", "tool_call_id": "c1", "content": "3: correct"}],
                      provenance={"agenthub_version": "0.1.0"})


def test_trajectory_round_trip_is_lossless(tmp_path):
    t = _traj(1)
    d = t.to_dict()
    assert d["return"] == 0.5 and d["stop_reason"] == "terminated"
    assert Trajectory.from_dict(json.loads(json.dumps(d))) == t
    path = tmp_path / "t.jsonl"
    with TrajectoryWriter(path) as w:
        w.write(t)
        w.write(_traj(2))
    assert read_trajectories(path) == [t, _traj(2)]


def test_torn_tail_is_ignored_and_repaired(tmp_path):
    path = tmp_path / "t.jsonl"
    with TrajectoryWriter(path) as w:
        w.write(_traj(1))
    with open(path, "a") as f:
        f.write('{"env_id": "half a li')  # what a crash mid-write would leave
    assert len(read_trajectories(path)) == 1
    with TrajectoryWriter(path) as w:  # reopening cuts the torn tail before appending
        w.write(_traj(2))
    assert [t.task_id for t in read_trajectories(path)] == ["t1", "t2"]
    assert all(line.endswith("}") for line in path.read_text().splitlines())


def test_messages_reconstructs_the_conversation():
    t = _traj(1)
    assert [m["role"] for m in t.messages()] == ["user", "assistant", "tool"]


def test_conversation_problems_finds_what_breaks_an_openai_conversation():
    from agenthub.types import conversation_problems

    call = {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    good = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
            {"role": "assistant", "content": None, "tool_calls": [call, {**call, "id": "b"}], "reasoning": "r"},
            {"role": "tool", "tool_call_id": "a", "content": "1"}, {"role": "tool", "tool_call_id": "b", "content": "2"},
            {"role": "user", "content": [{"type": "text", "text": "next"}]}]
    assert conversation_problems(good) == []
    broken = {
        "tool message for an id no call has": good[:4] + [{"role": "tool", "tool_call_id": "zzz", "content": "x"}],
        "a call never answered": good[:4],
        "a user message before the answers": good[:3] + [good[5], good[3], good[4]],
        "repeated ids": good[:2] + [{**good[2], "tool_calls": [call, call]}, good[3]],
        "a call without an id": good[:2] + [{**good[2], "tool_calls": [{"type": "function", "function": {
            "name": "f", "arguments": "{}"}}]}],
        "arguments not text": good[:2] + [{**good[2], "tool_calls": [{**call, "function": {
            "name": "f", "arguments": {}}}]}, good[3]],
        "content of another shape": [{"role": "user", "content": 5}],
        "an unknown role": [{"role": "robot", "content": "x"}],
    }
    for why, messages in broken.items():
        assert conversation_problems(messages), why


def test_text_of_never_raises_on_any_content_shape():
    from agenthub.types import text_of

    assert text_of({"role": "assistant", "content": None}) == ""
    assert text_of({"role": "user", "content": [{"type": "text", "text": "a"}, "b", {"type": "text", "text": None},
                                                 {"type": "text", "text": "c"}]}) == "ac"
    assert text_of({"role": "user", "content": 5}) == "" and text_of({"role": "user"}) == ""
