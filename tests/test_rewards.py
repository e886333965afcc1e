"""Reward-module formulas on hand-computed trajectories, config parsing, and the
`agenthub rewards score` command on real guess-number trajectories.

The model-backed modules (SPA's estimator, IGPO with a real transformers scorer) are in
test_rewards_models.py.
"""

import json
import math

import pytest

from agenthub.errors import AgentHubError
from agenthub.evaluation import evaluate
from agenthub.rewards import (Compose, GatedAccumulation, InformationGain, Outcome, TurnLevel, from_config)
from agenthub.rewards.info_gain import exact_match, f1
from agenthub.types import Trajectory, Turn, read_trajectories


def episode(rewards, outcome=0.0, *, success=None, components=None, last_info=None, actions=None):
    turns = []
    for i, r in enumerate(rewards):
        turns.append(Turn(observation=[{"role": "user", "content": f"obs {i}"}],
                          action={"role": "assistant", "content": actions[i] if actions else f"act {i}"},
                          reward=r, reward_components=dict(components[i]) if components else {}))
    if turns and last_info:
        turns[-1].info.update(last_info)
    return Trajectory("test/env-v0", "task", 0, "test", turns=turns, outcome=outcome,
                      success=outcome >= 1.0 if success is None else success)


def approx(rows):
    return [pytest.approx(r) for r in rows]


# --- G-RA -------------------------------------------------------------------------

def test_gra_design_example():
    module = GatedAccumulation(threshold=1.0)
    assert module([episode([0.1, 0.2], 0.0)]) == approx([[0.0, 0.0]])
    assert module([episode([0.1, 0.2], 1.0)]) == approx([[0.1, 1.2]])


def test_gra_gate_exactly_at_threshold():
    at = episode([0.1, 0.2], 0.5)
    assert GatedAccumulation(threshold=0.5)([at]) == approx([[0.1, 0.7]])
    assert GatedAccumulation(threshold=0.5, comparison=">")([at]) == approx([[0.0, 0.5]])
    just_above = episode([0.1, 0.2], 0.5 + 1e-6)
    assert GatedAccumulation(threshold=0.5, comparison=">")([just_above]) == approx([[0.1, 0.7 + 1e-6]])


def test_gra_per_turn_level_total_equal_to_threshold_counts_as_equal():
    # 0.1 + 0.2 is 0.30000000000000004 in floating point; a threshold of 0.3 is met by
    # ">=" and not by ">", as the config's author means
    levels = [{"source": "outcome", "threshold": 0.0}, {"source": "score", "threshold": 0.3}, {"source": "reward"}]
    traj = episode([1.0, 1.0], 0.0, components=[{"score": 0.1}, {"score": 0.2}])
    assert GatedAccumulation(levels=levels)([traj]) == approx([[1.1, 1.2]])
    closed = GatedAccumulation(levels=levels, comparison=">")
    assert closed([traj]) == approx([[0.0, 0.0]])  # the outcome 0 > 0 fails first
    levels[0]["threshold"] = -1.0
    closed = GatedAccumulation(levels=levels, comparison=">")
    assert closed([traj]) == approx([[0.1, 0.2]])  # outcome passes, score does not
    assert closed.metrics == {"gra/gate_open_rate": 0.0, "gra/gate_open_rate/score": 1.0,
                              "gra/gate_open_rate/reward": 0.0, "gra/mean_return": pytest.approx(0.3)}


def test_gra_records_components_and_gate_open_rate():
    group = [episode([0.1, 0.2], 1.0), episode([0.3], 0.0), episode([0.5, 0.5, 0.5], 1.0), episode([0.4], 0.2)]
    module = GatedAccumulation()
    rewards = module(group)
    assert rewards == approx([[0.1, 1.2], [0.0], [0.5, 0.5, 1.5], [0.2]])  # the outcome is always paid
    assert module.metrics["gra/gate_open_rate"] == 0.5
    assert group[0].turns[1].reward_components == pytest.approx(
        {"gra/gated": 0.2, "gra/gate_open": 1.0, "gra/total": 1.2})
    assert group[1].turns[0].reward_components == {"gra/gated": 0.0, "gra/gate_open": 0.0, "gra/total": 0.0}


def test_dra_baseline_accumulates_without_gate():
    module = from_config("dra")
    assert module([episode([0.1, 0.2], 0.0), episode([0.1, 0.2], 1.0)]) == approx([[0.1, 0.2], [0.1, 1.2]])
    assert "dra/gate_open_rate" not in module.metrics


def test_gra_immediate_can_be_a_component():
    traj = episode([5.0, 5.0], 1.0, components=[{"score": 0.25}, {"score": 0.5}])
    assert GatedAccumulation(immediate="score")([traj]) == approx([[0.25, 1.5]])


def test_single_turn_and_empty_episodes():
    single_won, single_lost, empty = episode([0.3], 1.0), episode([0.3], 0.0), episode([], 1.0)
    assert GatedAccumulation()([single_won, single_lost, empty]) == approx([[1.3], [0.0], []])
    assert Outcome()([single_won, single_lost, empty]) == approx([[1.0], [0.0], []])
    assert TurnLevel(scale="practitioner")([single_won, empty]) == approx([[1.0], []])
    assert TurnLevel()([empty]) == [[]]
    assert InformationGain()([empty, single_won]) == approx([[], [1.0]])  # no scorer needed: nothing to score
    assert Compose([(1.0, Outcome()), (1.0, "reward")])([empty]) == [[]]


# --- turn-level and outcome -----------------------------------------------------

def test_turn_level_passes_env_rewards_through():
    traj = episode([0.5, -0.1, 2.0], 1.0, components=[{"score": 1.0}, {"score": 0.0, "bad": 1.0}, {"score": 2.0}])
    assert TurnLevel()([traj]) == approx([[0.5, -0.1, 2.0]])
    assert TurnLevel(components=["score", "bad"])([traj]) == approx([[1.0, 1.0, 2.0]])
    assert traj.turns[1].reward_components["turn/dense"] == 1.0


def test_practitioner_scaling():
    won = episode([0.2, 0.6], 1.0)
    lost = episode([1.0, 1.0], 0.0, last_info={"max_reward": 4.0})
    module = TurnLevel(scale="practitioner")
    assert module([won, lost]) == approx([[0.25, 0.75], [0.25, 0.25]])
    assert module.metrics["turn/max_reward_known_rate"] == 0.5
    # a win with no positive dense reward: the last turn makes the sum 1
    assert module([episode([0.0, -0.5], 1.0)]) == approx([[0.0, 1.0]])
    # max_reward unknown: the group's best total stands in for it
    assert module([episode([1.0, 1.0], 0.0), episode([1.0], 0.0)]) == approx([[0.5, 0.5], [0.5]])


def test_outcome_is_sparse():
    assert Outcome()([episode([0.3, 0.3, 0.3], 0.7)]) == approx([[0.0, 0.0, 0.7]])


# --- information gain (formula; the real-model test is in test_rewards_models.py) ---

class ContainsAnswer:
    """An AnswerScorer whose belief is 0.9 once the answer appears in the context, else 0.1."""

    def answer_logprob(self, contexts, answers):
        return [(math.log(0.9 if answer in json.dumps(context) else 0.1), 1)
                for context, answer in zip(contexts, answers)]


def qa_episode(ground_truth="paris", final="Paris!", outcome=1.0):
    traj = episode([0.0, 0.0, 0.0], outcome, actions=["search france", "open doc", final])
    traj.turns[1].observation = [{"role": "tool", "content": "France has many cities."}]
    traj.turns[2].observation = [{"role": "tool", "content": "The capital is paris."}]
    traj.turns[2].info["ground_truth"] = ground_truth
    return traj


def test_information_gain_formula():
    traj = qa_episode()
    module = InformationGain(scorer=ContainsAnswer())
    # beliefs before turns 1, 2, 3: 0.1, 0.1, 0.9 -> gains 0.0 and 0.8, then the outcome
    assert module([traj]) == approx([[0.0, 0.8, 1.0]])
    assert traj.turns[1].reward_components["igpo/belief"] == pytest.approx(0.9)
    assert module.metrics == pytest.approx({"igpo/mean_gain": 0.4, "igpo/ground_truth_rate": 1.0})
    log_module = InformationGain(scorer=ContainsAnswer(), log_prob=True, final="em")
    assert log_module([qa_episode()]) == approx([[0.0, math.log(9), 1.0]])
    assert InformationGain(scorer=ContainsAnswer(), final="f1")([qa_episode(final="it is paris")]) == approx(
        [[0.0, 0.8, 0.5]])  # precision 1/3, recall 1


def test_information_gain_without_ground_truth_pays_the_outcome():
    traj = qa_episode()
    del traj.turns[2].info["ground_truth"]
    module = InformationGain(scorer=ContainsAnswer())
    assert module([traj]) == approx([[0.0, 0.0, 1.0]])
    assert module.metrics["igpo/ground_truth_rate"] == 0.0


def test_information_gain_needs_a_scorer_when_there_is_something_to_score():
    with pytest.raises(AgentHubError, match="scorer"):
        InformationGain()([qa_episode()])


def test_answer_metrics():
    assert exact_match("The Paris.", "paris") == 1.0
    assert exact_match("Paris, France", "paris") == 0.0
    assert f1("paris france", "paris") == pytest.approx(2 / 3)
    assert f1("", "") == 1.0 and f1("london", "paris") == 0.0


# --- compose and config -----------------------------------------------------------

def test_compose_weights_modules_and_components():
    traj = episode([0.1, 0.2], 1.0, components=[{"malformed_action": 1.0}, {"invalid_action": 1.0}])
    module = Compose([(1.0, GatedAccumulation()), (0.5, Outcome()), (-0.1, "malformed_action"),
                      (0.0, "invalid_action"), (0.0, TurnLevel())])
    assert module([traj]) == approx([[0.1 - 0.1, 1.2 + 0.5]])
    # weight 0: logged, never added
    assert module.metrics["compose/invalid_action"] == 1.0
    assert module.metrics["compose/turn"] == pytest.approx(0.3)
    assert traj.turns[0].reward_components["turn/total"] == pytest.approx(0.1)
    assert module.metrics["gra/gate_open_rate"] == 1.0
    assert traj.turns[1].reward_components["compose/total"] == pytest.approx(1.7)


def test_compose_can_weight_a_component_a_module_recorded():
    traj = episode([0.1, 0.2], 1.0)
    module = Compose([(0.0, GatedAccumulation()), (2.0, "gra/gated")])
    assert module([traj]) == approx([[0.2, 0.4]])


def test_from_config_builds_every_form():
    assert isinstance(from_config("gra"), GatedAccumulation)
    gra = from_config({"name": "gra", "threshold": 0.5, "comparison": ">"})
    assert (gra.threshold, gra.comparison, gra.gated) == (0.5, ">", True)
    assert from_config({"name": "turn", "scale": "practitioner"}).scale == "practitioner"
    scorer = ContainsAnswer()
    composed = from_config([{"name": "gra", "weight": 2.0}, {"component": "malformed_action", "weight": -0.1},
                            {"name": "igpo", "weight": 0}, "outcome"], scorer=scorer)
    assert [(w, getattr(t, "namespace", t)) for w, t in composed.terms] == [
        (2.0, "gra"), (-0.1, "malformed_action"), (0.0, "igpo"), (1.0, "outcome")]
    assert composed.terms[2][1].scorer is scorer
    long_form = from_config({"name": "compose", "terms": [{"name": "dra"}]})
    assert long_form.terms[0][1].namespace == "dra"


@pytest.mark.parametrize("alias, name", [("gated", "gra"), ("turn_level", "turn"), ("progress", "spa"),
                                         ("info_gain", "igpo")])
def test_module_names_are_aliases_of_config_names(alias, name):
    cfg = {"estimator": "/nonexistent"} if name == "spa" else {}
    try:
        module = from_config({"name": alias, **cfg}, scorer=ContainsAnswer())
    except AgentHubError as e:  # spa checks its estimator dir only once the name is known
        assert name == "spa" and "is not a progress estimator" in str(e)
        return
    assert module.namespace == from_config({"name": name}, scorer=ContainsAnswer()).namespace == name


@pytest.mark.parametrize("cfg, message", [
    ("grated", "unknown reward 'grated' (did you mean 'gated'?) (choose from: turn, outcome, gra, dra, spa, igpo, "
               "compose; aliases: turn_level = turn, gated = gra, progress = spa, info_gain = igpo)"),
    ("turn-level", "(did you mean 'turn_level'?)"),
    ("GRA", "(did you mean 'gra'?)"),
    ({"name": 3}, "a reward's name is a string"),
    ({"name": "gra", "treshold": 1}, "reward 'gra' has no setting 'treshold' (did you mean 'threshold'?)"),
    ({"name": "gra", "comparison": "=>"}, "comparison must be '>=' or '>'"),
    ({"name": "turn", "scale": "log"}, "scale must be 'none' or 'practitioner'"),
    ({"name": "spa"}, "reward 'spa' needs `estimator: DIR`"),
    ({"name": "spa", "estimator": "/nonexistent"}, "is not a progress estimator"),
    ({"threshold": 1}, "a reward config needs a name"),
    ({"name": "compose", "terms": []}, "needs `terms`"),
    ([{"component": "score", "name": "x"}], "takes only `component` and `weight`"),
    ([{"name": "gra"}, {"name": "gra"}], "two terms named 'gra'"),
    ({"name": "gra", "levels": [{"source": "outcome"}, {"source": "reward"}]}, "needs a threshold"),
])
def test_from_config_errors_are_one_clear_line(cfg, message):
    with pytest.raises(AgentHubError) as error:
        from_config(cfg)
    assert message in str(error.value) and "\n" not in str(error.value)


# --- the command line, on real trajectories ---------------------------------------

@pytest.fixture(scope="module")
def guess_number_batch(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    results = evaluate("tools/guess-number:test", "random", out, episodes=20, samples=4, progress=False)
    return out / "trajectories.jsonl", results


def test_cli_score_compares_modules(cli, guess_number_batch, tmp_path):
    path, results = guess_number_batch
    scored, report = tmp_path / "scored.jsonl", tmp_path / "report.html"
    r = cli("rewards", "score", str(path), "--reward", "turn", "--reward", "{name: turn, scale: practitioner}",
            "--reward", "outcome", "--reward", "gra", "--reward", "dra", "--out", str(scored), "--report", str(report))
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    assert set(lines) >= {"turn", "turn(scale=practitioner)", "outcome", "gra", "dra"}
    # guess-number's outcome is 1 exactly on a win, so G-RA's gate opens on wins only
    assert f"gra/gate_open_rate {results['success_rate']:.3f}" in lines["gra"]
    html = report.read_text()
    assert html.count("<img") == 5 and "gra/gate_open_rate" in html
    rescored = read_trajectories(scored)
    assert len(rescored) == results["episodes"]
    for trajectory in rescored:
        for turn in trajectory.turns:
            assert {"turn/total", "outcome/total", "gra/total", "gra/gate_open", "dra/total"} <= set(
                turn.reward_components)
        gra_return = sum(t.reward_components["gra/total"] for t in trajectory.turns)
        expected = trajectory.outcome + trajectory.return_ if trajectory.success else 0.0
        assert gra_return == pytest.approx(expected)


def test_cli_score_errors(cli, guess_number_batch, tmp_path):
    path, _ = guess_number_batch
    r = cli("rewards", "score", str(path), "--reward", "nope")
    assert r.returncode == 2 and r.stderr.strip().startswith("agenthub: error: unknown reward 'nope'")
    r = cli("rewards", "score", str(tmp_path / "missing.jsonl"), "--reward", "gra")
    assert r.returncode == 2 and "missing.jsonl" in r.stderr and "Traceback" not in r.stderr
    r = cli("rewards", "score", str(path), "--reward", "{name: gra")
    assert r.returncode == 2 and "not valid YAML" in r.stderr
