"""The suite generator: real libraries in, validated bug-fixing tasks out.

For each library: run its suite twice on the pristine snapshot (the tests that pass both
times are the baseline — a flaky test never becomes part of a task), list every
mutation site in its functions, put them in a seeded order that takes the mutation
kinds in turn, and run the suite against each mutant in a sandbox. A mutant is kept
when some baseline tests fail (FAIL_TO_PASS) while the rest still pass (PASS_TO_PASS)
— the gold patch restores the snapshot, whose run is the baseline. The failing tests are
run a second time and only those that fail again count, so a timing fluke never becomes
a FAIL_TO_PASS test. Mutants that break nothing, break collection, hang, or fail more
than half the suite are discarded, and at most one bug is kept per function. Same seed,
same suite.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from agenthub.errors import AgentHubError
from agenthub.progress import progress_bar

from . import mutations, patches, testrun
from .image import open_box
from .instances import Instance, LibraryTests, SuiteData
from .libraries import LIBRARIES, Library, library, snapshot, source_files

WORKDIR = "/workspace"
MAX_FAILING_FRACTION = 0.5  # a mutant failing more of the suite than this "breaks everything"


@dataclass
class BuildOptions:
    name: str = "pylibs"
    libraries: list[str] = field(default_factory=lambda: list(LIBRARIES))
    per_library: int = 20
    seed: int = 0
    test_fraction: float = 0.25
    backend: str = "bwrap"
    workers: int = 2
    max_tries: int = 300  # mutants tried per library before giving up on reaching per_library


@dataclass
class _Verdict:
    status: str  # "accepted" or why the mutant was discarded
    mutated: str | None = None
    fail_to_pass: list[str] = field(default_factory=list)
    excerpt: str = ""


def build_suite(out: Path, options: BuildOptions, progress: bool = True) -> SuiteData:
    """Generate, validate and write a suite to `out`/instances.json and `out`/README.md."""
    if not 0 <= options.test_fraction < 1:
        raise AgentHubError("test_fraction must be in [0, 1)")
    libs = [library(name) for name in options.libraries]
    suite = SuiteData(options.name, options.seed, {}, [], {
        "options": {k: v for k, v in vars(options).items() if k != "libraries"},
        "toolchain": toolchain(options.backend), "libraries": {}, "kinds": {}})
    for lib in libs:
        with progress_bar(progress, lib.name, options.per_library) as advance:
            tests, instances, lib_stats = _build_library(lib, options, advance)
        suite.libraries[lib.name] = tests
        suite.instances += instances
        suite.stats["libraries"][lib.name] = lib_stats
    kinds: dict[str, Counter] = defaultdict(Counter)
    for lib_stats in suite.stats["libraries"].values():
        for kind, counts in lib_stats.pop("kinds").items():
            kinds[kind].update(counts)
    suite.stats["kinds"] = {k: dict(kinds[k]) for k in sorted(kinds)}
    out.mkdir(parents=True, exist_ok=True)
    suite.save(out / "instances.json")
    (out / "README.md").write_text(readme(suite))
    return suite


def _build_library(lib: Library, options: BuildOptions, advance) -> tuple[LibraryTests, list[Instance], dict]:
    root = snapshot(lib)
    first, second = (_run(lib, root, options.backend) for _ in range(2))
    if first.broken or not first.passed:
        raise AgentHubError(f"the test suite of {lib.snapshot_id} does not run in the {options.backend} "
                            f"sandbox:\n{first.output[-2000:]}")
    baseline = first.passed & second.passed
    seconds = round(max(first.duration, second.duration), 2)
    timeout = max(60.0, 10 * seconds)

    candidates = _ordered_sites(lib, root, random.Random(f"{options.seed}/{lib.name}"))
    accepted: list[tuple[mutations.Site, _Verdict]] = []
    used_functions: set[tuple[str, str]] = set()
    stats = {"snapshot_id": lib.snapshot_id, "tests": len(baseline), "suite_seconds": seconds,
             "sites": len(candidates), "tried": 0, "discarded": Counter(), "kinds": defaultdict(Counter)}
    queue = list(candidates)
    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        while queue and len(accepted) < options.per_library and stats["tried"] < options.max_tries:
            chunk: list[mutations.Site] = []
            while queue and len(chunk) < options.workers:
                site = queue.pop(0)
                if (site.path, site.function) not in used_functions:
                    chunk.append(site)
            verdicts = pool.map(lambda s: _validate(lib, root, s, baseline, timeout, options.backend), chunk)
            for site, verdict in zip(chunk, verdicts):
                if (len(accepted) >= options.per_library or stats["tried"] >= options.max_tries
                        or (site.path, site.function) in used_functions):
                    continue  # decided in candidate order, so the result does not depend on `workers`
                stats["tried"] += 1
                stats["kinds"][site.kind]["tried"] += 1
                if verdict.status != "accepted":
                    stats["discarded"][verdict.status] += 1
                    continue
                stats["kinds"][site.kind]["accepted"] += 1
                accepted.append((site, verdict))
                used_functions.add((site.path, site.function))
                advance()
    stats["accepted"] = len(accepted)
    stats["discarded"] = dict(stats["discarded"])
    split_rng = random.Random(f"{options.seed}/{lib.name}/split")
    order = list(range(len(accepted)))
    split_rng.shuffle(order)
    test_indices = set(order[:round(len(accepted) * options.test_fraction)])
    instances = [_instance(lib, root, site, verdict, "test" if i in test_indices else "train", sorted(baseline))
                 for i, (site, verdict) in enumerate(accepted)]
    expected = {t: first.outcomes[t] for t in sorted(baseline) if first.outcomes[t] != "passed"}
    return LibraryTests(lib.snapshot_id, sorted(baseline), seconds, expected), instances, stats


def _ordered_sites(lib: Library, root: Path, rng: random.Random) -> list[mutations.Site]:
    """All sites, shuffled within each kind, then taken one kind after another so every
    kind gets its turn."""
    by_kind: dict[str, list[mutations.Site]] = defaultdict(list)
    for path in source_files(lib, root):
        for site in mutations.sites(path, (root / path).read_text()):
            by_kind[site.kind].append(site)
    for kind in sorted(by_kind):
        rng.shuffle(by_kind[kind])
    ordered = []
    while any(by_kind.values()):
        for kind in sorted(by_kind):
            if by_kind[kind]:
                ordered.append(by_kind[kind].pop())
    return ordered


def _run(lib: Library, root: Path, backend: str = "bwrap", mutated: tuple[str, str] | None = None,
         tests: list[str] | None = None, timeout: float = 300) -> testrun.TestResults:
    with open_box(backend, workdir=WORKDIR) as box:
        box.upload_dir(root, WORKDIR)
        if mutated:
            box.write_file(mutated[0], mutated[1])
        return testrun.run(box, lib, tests, timeout=timeout)


def _validate(lib: Library, root: Path, site: mutations.Site, baseline: set[str], timeout: float,
              backend: str) -> _Verdict:
    original = (root / site.path).read_text()
    mutated = mutations.apply(original, site)
    if mutated is None:
        return _Verdict("no_clean_edit")
    result = _run(lib, root, backend, (site.path, mutated), timeout=timeout)
    if result.timed_out:
        return _Verdict("hangs")
    if result.broken or baseline - set(result.outcomes):
        return _Verdict("breaks_collection")
    failing = sorted(baseline - result.passed)
    if not failing:
        return _Verdict("breaks_nothing")
    if len(failing) > MAX_FAILING_FRACTION * len(baseline):
        return _Verdict("breaks_too_much")
    again = _run(lib, root, backend, (site.path, mutated), tests=failing, timeout=timeout)
    failing = [t for t in failing if again.outcomes.get(t) in ("failed", "error")]  # a fluke fails once
    if not failing:
        return _Verdict("flaky")
    shown = _run(lib, root, backend, (site.path, mutated), tests=[failing[0]], timeout=timeout)
    return _Verdict("accepted", mutated, failing, testrun.failure_excerpt(shown.output))


def _instance(lib: Library, root: Path, site: mutations.Site, verdict: _Verdict, split: str,
              baseline: list[str]) -> Instance:
    original = (root / site.path).read_text()
    bug = patches.diff(site.path, original, verdict.mutated)
    gold = patches.diff(site.path, verdict.mutated, original)
    # the stored patches must reproduce the validated files exactly
    assert patches.apply({site.path: original}, bug)[site.path] == verdict.mutated
    assert patches.apply({site.path: verdict.mutated}, gold)[site.path] == original  # type: ignore[dict-item]
    digest = hashlib.sha256(bug.encode()).hexdigest()[:10]
    return Instance(
        instance_id=f"{lib.name}-{lib.version}__{digest}", library=lib.name, snapshot_id=lib.snapshot_id,
        split=split, kind=site.kind, file=site.path, function=site.function, line=site.line,
        bug_patch=bug, gold_patch=gold,
        problem_statement=problem_statement(lib, verdict.fail_to_pass, len(baseline), verdict.excerpt),
        FAIL_TO_PASS=verdict.fail_to_pass, PASS_TO_PASS=[t for t in baseline if t not in verdict.fail_to_pass])


def problem_statement(lib: Library, failing: list[str], n_tests: int, excerpt: str) -> str:
    """An issue as a user would file it: what fails and how, never where the bug is."""
    shown = failing[0]
    error = next((line[1:].strip() for line in excerpt.splitlines() if line.startswith("E ")), "")
    title = f"`{shown.split('::', 1)[-1]}` fails" + (f": {error[:120]}" if error else "")
    count = "1 test fails" if len(failing) == 1 else f"{len(failing)} tests fail"
    text = [f"## {title}", "",
            f"In this checkout of {lib.name} {lib.version}, {count} out of its {n_tests} tests. "
            f"For example `{shown}`:", "", "```", excerpt or "(no output)", "```"]
    others = failing[1:6]
    if others:
        more = f" and {len(failing) - 6} more" if len(failing) > 6 else ""
        text += ["", "Also failing: " + ", ".join(f"`{t}`" for t in others) + more + "."]
    text += ["", "The tests look right to me: the library should be fixed so that they pass, "
                 "without breaking the tests that pass now."]
    return "\n".join(text)


def toolchain(backend: str) -> str:
    """The Python and pytest a backend's sandboxes offer; AgentHubError if they lack them."""
    with open_box(backend, workdir=WORKDIR) as box:
        r = box.exec(["python3", "-c", "import sys, pytest; print(sys.version.split()[0], pytest.__version__)"],
                     timeout=60)
    if not r.ok:
        raise AgentHubError(f"the {backend} sandbox has no python3 with pytest ({r.stderr.strip()[-200:]}); "
                            f"on Debian: apt-get install python3-pytest")
    python, pytest = r.stdout.split()
    return f"python {python}, pytest {pytest} ({backend} sandbox)"


def readme(suite: SuiteData) -> str:
    """The suite's statistics, per library and per mutation kind."""
    stats, opts = suite.stats, suite.stats.get("options", {})
    lines = [f"# SWE suite `swe/{suite.name}`", "",
             f"{len(suite.instances)} validated bug-fixing tasks made from {len(suite.libraries)} real libraries "
             f"({len(suite.split('train'))} train, {len(suite.split('test'))} test). Each bug is one program "
             "transformation of a library function; it is kept only if some of the library's own tests fail "
             "with it (FAIL_TO_PASS) and the rest still pass (PASS_TO_PASS), and the gold patch restores them all.",
             "", "Regenerate it (same seed, same suite):", "", "```",
             f"agenthub swe build-suite --name {suite.name} --seed {suite.seed} "
             f"--per-library {opts.get('per_library')} --out DIR", "```", "",
             f"Validated with {stats.get('toolchain', '?')}.", "",
             "## Per library", "",
             "| library | snapshot | tests | suite time (s) | sites | tried | instances | train | test | "
             "discarded |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in stats.get("libraries", {}).items():
        mine = [i for i in suite.instances if i.library == name]
        discarded = ", ".join(f"{k} {v}" for k, v in sorted(s.get("discarded", {}).items())) or "-"
        lines.append(f"| {name} | `{s['snapshot_id']}` | {s['tests']} | {s['suite_seconds']} | {s['sites']} | "
                     f"{s['tried']} | {len(mine)} | {sum(i.split == 'train' for i in mine)} | "
                     f"{sum(i.split == 'test' for i in mine)} | {discarded} |")
    lines += ["", "## Per mutation kind", "", "| kind | what it does | tried | instances | kept |",
              "|---|---|---|---|---|"]
    for kind, description in mutations.KINDS.items():
        s = stats.get("kinds", {}).get(kind, {})
        tried, kept = s.get("tried", 0), s.get("accepted", 0)
        rate = f"{100 * kept / tried:.0f}%" if tried else "-"
        lines.append(f"| {kind} | {description} | {tried} | {kept} | {rate} |")
    f2p = sorted(len(i.FAIL_TO_PASS) for i in suite.instances)
    if f2p:
        lines += ["", f"FAIL_TO_PASS tests per instance: median {f2p[len(f2p) // 2]}, min {f2p[0]}, max {f2p[-1]}."]
    lines += ["", "Discard reasons: `breaks_nothing` (no test fails), `breaks_too_much` (more than half the "
              "suite fails), `breaks_collection` (a test file no longer imports), `hangs` (the suite times out), "
              "`flaky` (no failure repeated on a second run of the failing tests), `no_clean_edit` (the change "
              "cannot be written as a minimal text edit). A test that fails only once is never a FAIL_TO_PASS test."]
    return "\n".join(lines) + "\n"
