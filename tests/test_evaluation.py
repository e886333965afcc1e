import json
import math

import pytest

import agenthub
from agenthub.evaluation import evaluate, pass_at_k


def test_pass_at_k_matches_hand_computed_values():
    assert pass_at_k(5, 0, 1) == 0.0
    assert pass_at_k(5, 5, 3) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    # n=4, c=1, k=2: 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    # n=10, c=3, k=5: 1 - C(7,5)/C(10,5) = 1 - 21/252
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)
    assert pass_at_k(3, 1, 3) == 1.0  # n - c < k
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_eval_writes_results_trajectories_and_report(tmp_path):
    res = evaluate("tools/guess-number:test", "random", tmp_path, episodes=6, samples=4, progress=False)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == res
    for key in ("target", "agent", "episodes", "success_rate", "mean_return", "mean_turns", "pass_at_k",
                "errors", "per_task", "duration_s"):
        assert key in res
    assert res["episodes"] == 24 and len(res["per_task"]) == 6 and set(res["pass_at_k"]) == {"1", "2", "4"}
    expected = sum(pass_at_k(4, p["successes"], 2) for p in res["per_task"]) / 6
    assert math.isclose(res["pass_at_k"]["2"], expected)
    assert res["pass_at_k"]["1"] == pytest.approx(res["success_rate"])
    assert len((tmp_path / "trajectories.jsonl").read_text().splitlines()) == 24
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "Per task" in html


def test_oracle_solves_the_reference_suite(tmp_path):
    res = evaluate("tools/guess-number:test", "oracle", tmp_path, episodes=20, progress=False)
    assert res["success_rate"] == 1.0 and res["errors"] == 0


class _SurrogateEnv(agenthub.Env):
    """Echoes half an emoji in its observations, info and task id, as a web page or a
    repository file can."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return [{"role": "user", "content": "page \ud83d"}], {"task_id": f"task-\udc00-{seed}"}

    def step(self, action):
        return [{"role": "user", "content": "echo \ud83d"}], 1.0, True, False, {"success": True, "note": "\ud83d"}


agenthub.register("test/surrogate-echo-v0", _SurrogateEnv, max_turns=3)


def test_evaluation_writes_results_trajectories_and_report_through_lone_surrogates(tmp_path):
    results = evaluate("test/surrogate-echo-v0", "random", tmp_path, episodes=3, progress=False)
    assert results["episodes"] == 3 and results["success_rate"] == 1.0 and results["errors"] == 0
    back = agenthub.read_trajectories(tmp_path / "trajectories.jsonl")
    assert [t.final_observation[0]["content"] for t in back] == ["echo \ud83d"] * 3
    assert json.loads((tmp_path / "results.json").read_text())["per_task"][0]["task_id"] == "task-\udc00-0"
    assert "task-\\udc00-0" in (tmp_path / "report.html").read_text(encoding="utf-8")
