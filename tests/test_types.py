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
