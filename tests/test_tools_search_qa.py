"""Multi-hop search QA: the generated world, its search engine, questions, scoring, oracle."""

import random
from collections import Counter

import pytest

import agenthub
from agenthub.agents import load_agent
from agenthub.environments.tools.knowledge_base import RELATIONS, build_knowledge_base, tokenize
from agenthub.environments.tools.search_qa import make_question
from agenthub.runner import Episode, run_episodes
from agenthub.types import tool_calls_message


@pytest.fixture(scope="module")
def kb():
    return build_knowledge_base(0)


def calls(*pairs):
    return tool_calls_message(list(pairs), "q")


def test_world_is_large_deterministic_and_consistent(kb):
    assert len(kb.documents) >= 3000
    assert Counter(e.kind for e in kb.entities.values()) == {
        "person": 2500, "company": 420, "city": 320, "university": 130, "country": 40}
    rebuilt = build_knowledge_base.__wrapped__(0)  # not the cached one
    assert [(d.id, d.text) for d in rebuilt.documents.values()] == [(d.id, d.text) for d in kb.documents.values()]
    other = build_knowledge_base.__wrapped__(1)
    assert other.documents["person-0000"].text != kb.documents["person-0000"].text
    assert len({e.name.lower() for e in kb.entities.values()}) == len(kb.entities)  # names are unique
    for entity in kb.entities.values():
        text = kb.documents[entity.id].text
        assert all(value in text for value in entity.attributes.values()), entity
        for relation, target in entity.relations.items():
            assert kb.entities[target].kind == RELATIONS[entity.kind][relation]
            assert kb.entities[target].name in text
        if entity.kind == "country":  # the capital is one of the country's own cities
            assert kb.entities[entity.relations["capital"]].relations["country"] == entity.id


def test_search_ranks_an_entitys_own_page_first(kb):
    sample = random.Random(0).sample(sorted(kb.entities), 300)
    for entity_id in sample:
        hits = kb.search(kb.entities[entity_id].name)
        assert hits[0].doc_id == entity_id, (kb.entities[entity_id].name, [h.title for h in hits])
    assert kb.search("the of and") == [] and kb.search("") == []
    assert tokenize("The Mayor of Soudean, 1466!") == ["mayor", "soudean", "1466"]


def test_questions_chain_two_to_four_distinct_lookups(kb):
    for hops in (2, 3, 4):
        for seed in range(50):
            q = make_question(kb, random.Random(seed), hops)
            assert q.hops == hops == len(set(q.chain))
            assert kb.entities[q.chain[0]].name in q.text
            assert q.answer in kb.documents[q.chain[-1]].text
            for a, b in zip(q.chain, q.chain[1:]):  # each hop is a relation stated in the previous page
                assert b in kb.entities[a].relations.values()
    env = agenthub.make("tools/search-qa-v0")
    hops = Counter(env.reset(seed=t.seed)[1]["hops"] for t in agenthub.load_suite("tools/search-qa", limit=60))
    assert set(hops) == {2, 3, 4}


def test_oracle_wins_every_test_task_through_the_runner(tmp_path):
    tasks = agenthub.load_suite("tools/search-qa", "test", limit=30)
    trajectories = run_episodes([Episode(t.env_id, t.seed) for t in tasks], load_agent("oracle"),
                                out=tmp_path / "t.jsonl")
    assert all(t.success and t.outcome == 1.0 for t in trajectories), [t.error for t in trajectories]
    for t in trajectories:
        last = t.turns[-1]
        assert last.reward == 1.0 and last.reward_components == {"em": 1.0, "f1": 1.0}
        assert last.info["ground_truth"] and len(t.turns) == 2 * last.info["hops"] + 1
    written = agenthub.read_trajectories(tmp_path / "t.jsonl")  # in finishing order
    assert sorted(t.task_id for t in written) == sorted(t.task_id for t in trajectories)


def test_tools_several_calls_and_scoring():
    env = agenthub.make("tools/search-qa-v0", hops=2)
    obs, info = env.reset(seed=5)
    question = env.unwrapped.question
    start = env.unwrapped.kb.entities[question.chain[0]]
    obs, reward, terminated, truncated, info = env.step(calls(
        ("search", {"query": start.name}), ("open", {"doc_id": start.id}), ("open", {"doc_id": "person-99999"})))
    assert [m["tool_call_id"] for m in obs] == ["q_0", "q_1", "q_2"]
    assert obs[0]["content"].startswith(f"1. {start.id} | {start.name} | ")
    assert obs[1]["content"].startswith(f"{start.id} | {start.name}\n")
    assert obs[2]["content"].startswith("Error: no document 'person-99999'")
    assert not terminated and reward == 0.0 and info["ground_truth"] == question.answer
    obs, reward, *_ = env.step("the answer is probably 1960")
    assert "No tool was called" in obs[0]["content"] and reward == 0.0
    # a partly right answer: F1 reward and outcome, no exact-match success
    env.reset(seed=0)
    truth = env.unwrapped.question.answer
    partial = truth.split()[0] + " something"
    action = calls(("answer", {"answer": partial}), ("search", {"query": "x"}))
    obs, reward, terminated, truncated, info = env.step(action)
    assert terminated and info["success"] is False
    expected_f1 = 2 / (2 + len(truth.split()))  # precision 1/2, recall 1/n
    assert reward == pytest.approx(expected_f1) and info["outcome"] == pytest.approx(expected_f1)
    assert obs[1]["content"].startswith("Not run")
    env.reset(seed=0)
    *_, info = env.step(calls(("answer", {"answer": f"The {truth.upper()}."})))
    assert info["success"] and info["outcome"] == 1.0  # SQuAD normalisation


def test_ground_truth_is_on_the_last_step_of_a_truncated_episode():
    env = agenthub.make("tools/search-qa-v0", max_turns=2)
    env.reset(seed=2)
    env.step(calls(("search", {"query": "university"})))
    obs, reward, terminated, truncated, info = env.step(calls(("search", {"query": "city"})))
    assert truncated and not terminated and info["ground_truth"] == env.unwrapped.question.answer
    assert info["success"] is False and info["outcome"] == 0.0
