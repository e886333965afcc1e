"""Multi-hop question answering over a search engine (the IGPO setting).

Each episode asks one question about the generated world of `knowledge_base.py`, built
by chaining 1-3 relations from a named entity and ending on an attribute, e.g. "In
what year was the founder of the company that Kretroth Trerpem works for born?" -
three documents to find and read (2-4 hops). Tools: `search(query)` (BM25, top 5 with
snippets), `open(doc_id)` (the whole document) and `answer(answer)`, which ends the
episode. Several calls may share a turn.

Scoring: the answer turn's reward is its token F1 against the ground truth; `success`
is exact match (SQuAD normalisation) and `outcome` is F1. Every step's `info` carries
`ground_truth`, so a reward module (IGPO's belief in the answer) can read it from the
last turn of any episode, also one cut off by `max_turns`; agents must not read it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from agenthub.actions import Action
from agenthub.env import Env, StepResult
from agenthub.environments.tools.knowledge_base import ATTRIBUTES, RELATIONS, KnowledgeBase, build_knowledge_base
from agenthub.environments.tools.limits import bounded, checked_arguments
from agenthub.scoring import exact_match, f1
from agenthub.types import Message, tool_calls_message, tool_spec

RELATION_PHRASES = {
    ("person", "birthplace"): "the city where {} was born",
    ("person", "employer"): "the company that {} works for",
    ("person", "alma_mater"): "the university that {} attended",
    ("city", "country"): "the country that {} is in",
    ("city", "mayor"): "the mayor of {}",
    ("company", "headquarters"): "the city where {} is headquartered",
    ("company", "founder"): "the founder of {}",
    ("company", "ceo"): "the chief executive of {}",
    ("university", "location"): "the city where {} is located",
    ("university", "rector"): "the rector of {}",
    ("country", "capital"): "the capital of {}",
}
ATTRIBUTE_QUESTIONS = {
    ("person", "birth_year"): "In what year was {} born?",
    ("person", "occupation"): "What is the occupation of {}?",
    ("city", "founded"): "In what year was {} founded?",
    ("city", "population"): "What is the population of {}?",
    ("company", "founded"): "In what year was {} founded?",
    ("company", "industry"): "In which industry does {} operate?",
    ("university", "founded"): "In what year was {} founded?",
    ("country", "currency"): "What is the currency of {}?",
    ("country", "continent"): "On which continent is {}?",
    ("country", "language"): "What is the official language of {}?",
}
SYSTEM_PROMPT = (
    "You answer questions about a fictional world using its encyclopedia. Nothing about this world is "
    "common knowledge: look everything up. `search` finds documents (ids, titles, snippets), `open` shows a "
    "whole document. Questions need several lookups, one per entity along the way. When you know the "
    "answer, call `answer` with just the answer (a name, year or word), not a sentence.")
SEARCH_QA_TOOLS = [
    tool_spec("search", "Search the encyclopedia; returns the 5 best-matching documents with their ids "
              "and the start of their text.", {"query": {"type": "string"}}),
    tool_spec("open", "Show the whole document with this id (e.g. 'person-0042').", {"doc_id": {"type": "string"}}),
    tool_spec("answer", "Give the final answer; this ends the episode.", {"answer": {"type": "string"}}),
]


@dataclass
class Question:
    text: str
    answer: str
    chain: list[str]  # the entity ids to look up, in order; the answer is an attribute of the last

    @property
    def hops(self) -> int:
        return len(self.chain)


def make_question(kb: KnowledgeBase, rng: random.Random, hops: int) -> Question:
    """A question whose answer needs `hops` documents (1 <= hops), never revisiting an entity."""
    kinds = sorted(RELATIONS)
    while True:
        chain = [rng.choice(kb.of_kind(rng.choice(kinds))).id]
        phrase = kb.entities[chain[0]].name
        for _ in range(hops - 1):
            entity = kb.entities[chain[-1]]
            relation = rng.choice(sorted(RELATIONS[entity.kind]))
            target = entity.relations[relation]
            if target in chain:
                break
            phrase = RELATION_PHRASES[(entity.kind, relation)].format(phrase)
            chain.append(target)
        if len(chain) == hops:
            last = kb.entities[chain[-1]]
            attribute = rng.choice(ATTRIBUTES[last.kind])
            return Question(ATTRIBUTE_QUESTIONS[(last.kind, attribute)].format(phrase),
                            last.attributes[attribute], chain)


class SearchQAEnv(Env):
    tools = SEARCH_QA_TOOLS
    version = "0"

    def __init__(self, kb_seed: int = 0, hops: int | None = None, max_turns: int = 12, top_k: int = 5):
        """`hops`: documents each question needs (2-4 at random when None)."""
        self.kb_seed, self.hops, self.max_turns, self.top_k = kb_seed, hops, max_turns, top_k
        self.question: Question | None = None
        self.answered = False

    @property
    def kb(self) -> KnowledgeBase:
        return build_knowledge_base(self.kb_seed)  # cached: built once per process

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[list[Message], dict[str, Any]]:
        super().reset(seed=seed)
        rng = random.Random(f"search-qa:{seed if seed is not None else int(self.np_random.integers(2**31))}")
        self.question = make_question(self.kb, rng, self.hops or rng.choice([2, 3, 4]))
        self.answered = False
        return ([{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": self.question.text}],
                {"hops": self.question.hops})

    def step(self, action: Action) -> StepResult:  # type: ignore[override]
        assert self.question is not None, "call reset() first"
        info: dict[str, Any] = {"ground_truth": self.question.answer, "hops": self.question.hops}
        if not action.calls:
            hint = "No tool was called. Use `search` and `open` to look things up, and `answer` to finish."
            return ([{"role": "user", "content": hint}], 0.0, False, False,
                    {**info, "reward_components": {"no_tool_call": 1.0}})
        replies, scores = [], None
        for call in action.calls:
            try:
                arguments = checked_arguments(call.name, call.arguments, SEARCH_QA_TOOLS)
            except ValueError as e:
                replies.append({"role": "tool", "tool_call_id": call.id, "content": f"Error: {e}"})
                continue
            if self.answered:
                content = "Not run: the question has already been answered."
            elif call.name == "answer":
                given = str(arguments.get("answer", ""))
                scores = {"em": exact_match(given, self.question.answer), "f1": f1(given, self.question.answer)}
                self.answered = True
                content = (f"Answer recorded. The expected answer was {self.question.answer!r}: "
                           f"exact match {scores['em']:.0f}, F1 {scores['f1']:.2f}.")
            else:
                content = bounded(self._look_up(call.name, arguments))
            replies.append({"role": "tool", "tool_call_id": call.id, "content": content})
        if scores is None:
            return replies, 0.0, False, False, {**info, "reward_components": {"em": 0.0, "f1": 0.0}}
        info.update(success=scores["em"] == 1.0, outcome=scores["f1"], reward_components=scores)
        return replies, scores["f1"], True, False, info

    def _look_up(self, tool: str, arguments: dict[str, Any]) -> str:
        if tool == "search":
            try:
                hits = self.kb.search(str(arguments.get("query", "")), self.top_k)
            except ValueError as e:  # a query too long to search
                return f"Error: {e}"
            if not hits:
                return "No documents match."
            return "\n".join(f"{i}. {h.doc_id} | {h.title} | {h.snippet}" for i, h in enumerate(hits, 1))
        doc_id = str(arguments.get("doc_id", "")).strip()
        doc = self.kb.documents.get(doc_id)
        if doc is None:
            shown = doc_id if len(doc_id) <= 40 else doc_id[:37] + "..."
            return f"Error: no document {shown!r}; use an id from the search results, e.g. 'person-0042'."
        return f"{doc.id} | {doc.title}\n{doc.text}"

    def oracle_actions(self) -> list[str | Message]:
        """For each entity on the chain, search its name and open its page; then answer."""
        assert self.question is not None, "call reset() first"
        plan: list[str | Message] = []
        for i, entity_id in enumerate(self.question.chain):
            plan.append(tool_calls_message([("search", {"query": self.kb.entities[entity_id].name})], f"search_{i}"))
            plan.append(tool_calls_message([("open", {"doc_id": entity_id})], f"open_{i}"))
        plan.append(tool_calls_message([("answer", {"answer": self.question.answer})], "answer"))
        return plan
