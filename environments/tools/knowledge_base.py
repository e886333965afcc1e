"""A made-up world, written up as an encyclopedia and searchable with BM25.

Multi-hop QA needs facts no model has memorised and a search engine over them. Both
are generated here from one seed: people, cities, countries, companies and
universities with attributes (years, occupations, currencies, ...) and relations
(born in, works for, founded by, capital of, ...), one encyclopedia-style document per
entity that states its facts (plus a little noise), and a BM25 index over the
documents. Each relation is stated only in its subject's document, so a question that
chains relations must be answered by reading one document per hop.

The default world (seed 0) has 3,410 documents and builds in about 0.2 s; it is cached
per process.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

from agenthub.errors import AgentHubError

try:
    from rank_bm25 import BM25Okapi
except ImportError as e:
    raise AgentHubError("tools/search-qa needs the rank_bm25 package: pip install 'agenthub[tools]'") from e

# Relations: kind -> {relation: target kind}. Attributes: kind -> attribute names.
RELATIONS = {
    "person": {"birthplace": "city", "employer": "company", "alma_mater": "university"},
    "city": {"country": "country", "mayor": "person"},
    "company": {"headquarters": "city", "founder": "person", "ceo": "person"},
    "university": {"location": "city", "rector": "person"},
    "country": {"capital": "city"},
}
ATTRIBUTES = {
    "person": ["birth_year", "occupation"],
    "city": ["founded", "population"],
    "company": ["founded", "industry"],
    "university": ["founded"],
    "country": ["currency", "continent", "language"],
}
SIZES = {"country": 40, "city": 320, "person": 2500, "company": 420, "university": 130}
MAX_QUERY_TERMS = 32  # each term costs about 1 ms; questions need a name or two

OCCUPATIONS = ["architect", "chemist", "novelist", "surgeon", "economist", "violinist", "engineer",
               "historian", "pilot", "botanist", "lawyer", "photographer", "astronomer", "sculptor"]
INDUSTRIES = ["shipbuilding", "software", "textiles", "agriculture", "pharmaceuticals", "mining",
              "publishing", "aviation", "banking", "robotics", "brewing", "logistics"]
HOBBIES = ["chess", "sailing", "birdwatching", "pottery", "cycling", "gardening", "fencing", "jazz piano"]
CURRENCY_UNITS = ["crown", "mark", "dinar", "florin", "real", "shilling", "thaler", "lira"]
COMPANY_SUFFIXES = ["Industries", "Systems", "Labs", "Works", "Group", "Holdings", "Dynamics", "Foods",
                    "Motors", "Media"]
UNIVERSITY_PATTERNS = ["{} University", "University of {}", "{} Institute of Technology", "{} College"]
CITY_SUFFIXES = ["", "", "", "ton", "ford", "port", "burg", "mouth", "vale"]
COUNTRY_SUFFIXES = ["ia", "land", "stan", "ora", "ica"]
_ONSETS = ["b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "kr", "l", "m", "n", "p", "pr",
           "r", "s", "sh", "st", "t", "th", "tr", "v", "w", "z"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou"]
_CODAS = ["", "", "", "n", "r", "l", "s", "th", "nd", "rk", "m"]
_TOKEN = re.compile(r"[a-z0-9]+")
STOPWORDS = {"a", "an", "the", "of", "in", "is", "was", "and", "by", "for", "at", "to", "its", "it", "what",
             "which", "who", "that", "where", "on", "did", "does", "how"}


@dataclass
class Entity:
    id: str  # also its document's id, e.g. "person-0042"
    kind: str
    name: str
    attributes: dict[str, str] = field(default_factory=dict)
    relations: dict[str, str] = field(default_factory=dict)  # relation -> entity id


@dataclass
class Document:
    id: str
    title: str
    text: str


@dataclass
class SearchHit:
    doc_id: str
    title: str
    snippet: str
    score: float


class KnowledgeBase:
    """The generated world: entities, their documents and a search engine over them."""

    def __init__(self, entities: dict[str, Entity], documents: dict[str, Document]):
        self.entities, self.documents = entities, documents
        self._ids = list(documents)
        # The title is indexed twice: an entity's own page should outrank pages that mention it.
        self._index = BM25Okapi([tokenize(f"{d.title} {d.title} {d.text}") for d in documents.values()])

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        """The `k` best documents for `query`; ValueError for a query of more than
        MAX_QUERY_TERMS terms (BM25 scores every document once per term)."""
        tokens = tokenize(query)
        if len(tokens) > MAX_QUERY_TERMS:
            raise ValueError(f"the query has {len(tokens)} search terms; at most {MAX_QUERY_TERMS} are searched")
        if not tokens:
            return []
        scores = self._index.get_scores(tokens)
        best = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
        hits = []
        for i in best:
            if scores[i] <= 0:
                break
            doc = self.documents[self._ids[i]]
            snippet = doc.text if len(doc.text) <= 120 else doc.text[:117].rsplit(" ", 1)[0] + " ..."
            hits.append(SearchHit(doc.id, doc.title, snippet, float(scores[i])))
        return hits

    def of_kind(self, kind: str) -> list[Entity]:
        return [e for e in self.entities.values() if e.kind == kind]


def tokenize(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]


@lru_cache(maxsize=2)
def build_knowledge_base(seed: int = 0) -> KnowledgeBase:
    """The world of `seed`: the same on every machine and every call."""
    rng = random.Random(f"knowledge-base:{seed}")
    names = _NameMaker(rng)
    entities: dict[str, Entity] = {}
    counts: Counter[str] = Counter()

    def add(kind: str, name: str, **attributes: object) -> Entity:
        entity = Entity(f"{kind}-{counts[kind]:04d}", kind, name, {k: str(v) for k, v in attributes.items()})
        counts[kind] += 1
        entities[entity.id] = entity
        return entity

    continents = [names.word(2) for _ in range(6)]
    countries = []
    for _ in range(SIZES["country"]):
        root = names.word(2)
        countries.append(add("country", names.unique(lambda: root + rng.choice(COUNTRY_SUFFIXES)),
                             continent=rng.choice(continents), language=f"{root}ese",
                             currency=names.unique(lambda: f"{names.word(1)} {rng.choice(CURRENCY_UNITS)}")))
    cities = []
    for i in range(SIZES["city"]):
        city = add("city", names.unique(lambda: names.word(rng.choice([2, 2, 3])) + rng.choice(CITY_SUFFIXES)),
                   founded=rng.randint(800, 1900), population=rng.randint(5_000, 3_000_000))
        city.relations["country"] = countries[i % len(countries)].id  # every country gets cities
        cities.append(city)
    for country in countries:
        own = [c for c in cities if c.relations["country"] == country.id]
        country.relations["capital"] = rng.choice(own).id
    firsts = [names.word(2) for _ in range(320)]
    lasts = [names.word(rng.choice([2, 3])) for _ in range(700)]
    people = [add("person", names.unique(lambda: f"{rng.choice(firsts)} {rng.choice(lasts)}"),
                  birth_year=rng.randint(1920, 2000), occupation=rng.choice(OCCUPATIONS))
              for _ in range(SIZES["person"])]
    companies = [add("company", names.unique(lambda: f"{names.word(2)} {rng.choice(COMPANY_SUFFIXES)}"),
                     founded=rng.randint(1850, 2015), industry=rng.choice(INDUSTRIES))
                 for _ in range(SIZES["company"])]
    universities = [add("university", names.unique(lambda: rng.choice(UNIVERSITY_PATTERNS).format(names.word(2))),
                        founded=rng.randint(1200, 1990))
                    for _ in range(SIZES["university"])]
    pick = {"city": cities, "person": people, "company": companies, "university": universities,
            "country": countries}
    for entity in entities.values():
        for relation, kind in RELATIONS[entity.kind].items():
            entity.relations.setdefault(relation, rng.choice(pick[kind]).id)
    documents = {e.id: Document(e.id, e.name, _describe(e, entities, rng, cities)) for e in entities.values()}
    return KnowledgeBase(entities, documents)


def _describe(e: Entity, entities: dict[str, Entity], rng: random.Random, cities: list[Entity]) -> str:
    """The entity's encyclopedia page: each of its facts in a sentence, plus noise."""
    a = e.attributes
    r = {k: entities[v].name for k, v in e.relations.items()}
    if e.kind == "person":
        first = e.name.split()[0]
        opening = rng.choice([f"{e.name} is {_a(a['occupation'])} born in {a['birth_year']}.",
                              f"Born in {a['birth_year']}, {e.name} works as {_a(a['occupation'])}."])
        return " ".join([opening, f"{first} was born in {r['birthplace']}.",
                         f"{first} studied at {r['alma_mater']} and works for {r['employer']}.",
                         f"In spare time {first} enjoys {rng.choice(HOBBIES)} and once visited "
                         f"{rng.choice(cities).name}."])
    if e.kind == "city":
        return (f"{e.name} is a city in {r['country']}, founded in {a['founded']}. It has a population of "
                f"{a['population']}. The mayor of {e.name} is {r['mayor']}.")
    if e.kind == "company":
        return (f"{e.name} is {_a(a['industry'])} company founded in {a['founded']} by {r['founder']}. "
                f"Its headquarters are in {r['headquarters']}. The chief executive of {e.name} is {r['ceo']}.")
    if e.kind == "university":
        return f"{e.name} is a university in {r['location']}, founded in {a['founded']}. Its rector is {r['rector']}."
    return (f"{e.name} is a country in {a['continent']}. Its capital is {r['capital']}. The currency of "
            f"{e.name} is the {a['currency']}, and its official language is {a['language']}.")


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


class _NameMaker:
    """Pronounceable made-up words, and a guard that no two entities share a name."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.taken: set[str] = set()

    def word(self, syllables: int) -> str:
        return "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) + self.rng.choice(_CODAS)
                       for _ in range(syllables)).capitalize()

    def unique(self, make: Callable[[], str]) -> str:
        """A name from `make` that no entity has yet (drawing again on a clash)."""
        name = make()
        while name.lower() in self.taken:
            name = make()
        self.taken.add(name.lower())
        return name
