"""Task instances and the suite file that holds them.

An instance is what SWE-bench calls one: a repository snapshot, the patch that puts a
bug in, the gold patch that takes it out, the tests that must go from failing to
passing (FAIL_TO_PASS) and those that must keep passing (PASS_TO_PASS), and a problem
statement. A suite is one JSON file of instances with train/test splits. PASS_TO_PASS
is every test of the library's suite that passes on the snapshot, minus FAIL_TO_PASS,
so the file stores each library's passing tests once instead of once per instance.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agenthub.errors import AgentHubError

SUITES_DIR = Path(__file__).parent / "suites"
DEFAULT_SUITE = "pylibs"


@dataclass
class Instance:
    instance_id: str
    library: str
    snapshot_id: str
    split: str
    kind: str  # the mutation that made the bug (see mutations.KINDS)
    file: str  # where the bug is: never shown to the agent
    function: str
    line: int
    bug_patch: str
    gold_patch: str
    problem_statement: str
    FAIL_TO_PASS: list[str]
    PASS_TO_PASS: list[str] = field(default_factory=list)


@dataclass
class LibraryTests:
    """A library's baseline: the tests that pass on its snapshot, and how long they take."""

    snapshot_id: str
    passing: list[str]
    seconds: float
    expected: dict[str, str] = field(default_factory=dict)
    """Tests of `passing` whose outcome on the snapshot is not "passed" (e.g. "xfailed"):
    judged passing only with that outcome."""


@dataclass
class SuiteData:
    name: str
    seed: int
    libraries: dict[str, LibraryTests]
    instances: list[Instance]
    stats: dict = field(default_factory=dict)  # what the generator tried and discarded

    def split(self, split: str) -> list[Instance]:
        return [i for i in self.instances if i.split == split]

    def get(self, instance_id: str) -> Instance:
        for inst in self.instances:
            if inst.instance_id == instance_id:
                return inst
        raise AgentHubError(f"suite {self.name!r} has no instance {instance_id!r}")

    def to_json(self) -> dict:
        instances = []
        for inst in self.instances:
            d = asdict(inst)
            del d["PASS_TO_PASS"]  # derived on load: the library's passing tests minus FAIL_TO_PASS
            instances.append(d)
        return {"name": self.name, "seed": self.seed,
                "libraries": {k: asdict(v) for k, v in self.libraries.items()},
                "stats": self.stats, "instances": instances}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n")
        tmp.replace(path)

    @classmethod
    def from_json(cls, d: dict) -> SuiteData:
        libraries = {k: LibraryTests(**v) for k, v in d["libraries"].items()}
        instances = []
        for raw in d["instances"]:
            inst = Instance(**raw)
            f2p = set(inst.FAIL_TO_PASS)
            inst.PASS_TO_PASS = [t for t in libraries[inst.library].passing if t not in f2p]
            instances.append(inst)
        return cls(d["name"], d["seed"], libraries, instances, d.get("stats", {}))


_loaded: dict[Path, SuiteData] = {}


def load(suite: str | Path = DEFAULT_SUITE) -> SuiteData:
    """A shipped suite by name, or a suite directory / instances.json built with
    `agenthub swe build-suite`."""
    path = Path(suite)
    if not path.exists():
        path = SUITES_DIR / str(suite)
    if path.is_dir():
        path = path / "instances.json"
    if not path.is_file():
        raise AgentHubError(f"no SWE suite at {suite!r}: give a shipped suite name "
                            f"({', '.join(shipped()) or 'none'}) or a folder made by `agenthub swe build-suite`")
    path = path.resolve()
    if path not in _loaded:
        try:
            _loaded[path] = SuiteData.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError, KeyError, AttributeError) as e:  # a damaged or foreign file
            raise AgentHubError(f"{path} is not a suite's instances.json ({type(e).__name__}: "
                                f"{' '.join(str(e).split())[:200]})") from None
    return _loaded[path]


def shipped() -> list[str]:
    return sorted(p.parent.name for p in SUITES_DIR.glob("*/instances.json"))
