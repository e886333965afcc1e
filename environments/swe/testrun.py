"""Running a library's own test suite in a sandbox and judging what happened.

Two ways to run pytest, from the repository root, with no cache written into the repo
and a fixed hash seed:

- `command` (the agent's `run_tests` tool): pytest's usual readable output.
- `run` (everything that JUDGES: validating a generated bug, the final evaluation): the
  code under test runs in the same process as pytest and can print, patch or exit
  anything, so nothing it can control is believed. The run is started so that nothing
  a patch adds is loaded: `python3 -s -P` (no user site, so no .pth / usercustomize
  from $HOME; no working directory on sys.path, so no sitecustomize from it), plugin
  autoload off, the snapshot's own pytest configuration passed with `-c` from a judge
  folder (never the working copy's pytest.ini / tox.ini / setup.cfg / pyproject.toml),
  and the judge plugin (`judge_plugin.py`) loaded first. Outcomes come from that
  plugin's signed report, cross-checked against the exit status; see `read_report`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import posixpath
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from agenthub.sandbox import Sandbox, SandboxError

from .libraries import Library, is_test_file, snapshot

PYTEST = ["python3", "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "--color=no", "-q",
          "--tb=short"]
TEST_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "COLUMNS": "120"}
JUDGE_DIR_PREFIX = ".agenthub-judge-"  # a fresh, random folder per judged run (see libraries.is_protected)
PLUGIN = "agenthub_swe_judge"
CONFIG_FILES = (("pytest.ini", "[pytest]"), (".pytest.ini", "[pytest]"),  # pytest's own search order
                ("pyproject.toml", "[tool.pytest.ini_options]"), ("tox.ini", "[pytest]"),
                ("setup.cfg", "[tool:pytest]"))
OK_EXIT = (0, 1)  # all passed / some failed

_FRAME = re.compile(r"^(\S[^:]*\.py):\d+: in ")
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")  # object addresses differ from run to run


@dataclass
class TestResults:
    outcomes: dict[str, str] = field(default_factory=dict)
    """node id -> passed|failed|error|skipped|xfailed|xpassed|not run (collected, but its body never ran
    through the judge)."""
    exit_code: int = 0
    timed_out: bool = False
    duration: float = 0.0
    output: str = ""
    problem: str | None = None  # why no outcome of this run can be believed (tampering, unfinished run)
    collect_errors: list[str] = field(default_factory=list)  # test files that failed to import or were skipped

    @property
    def passed(self) -> set[str]:
        """Tests that passed or failed as their xfail marker says (the baseline of a suite)."""
        return self.passing({t: "xfailed" for t, o in self.outcomes.items() if o == "xfailed"})

    def passing(self, expected: Mapping[str, str] | None = None) -> set[str]:
        """Tests whose outcome is what the gold run had (`expected`: node -> outcome;
        "passed" when not listed): a skip, xfail or xpass the gold run did not have is a
        failure. Empty when the run cannot be believed."""
        if self.problem is not None or self.timed_out:
            return set()
        expected = expected or {}
        return {t for t, o in self.outcomes.items() if o == expected.get(t, "passed")}

    @property
    def broken(self) -> bool:
        """The run itself went wrong (timeout, tampering, internal error, a module that does not import)."""
        return self.timed_out or self.problem is not None or self.exit_code not in OK_EXIT or bool(self.collect_errors)


def command(lib: Library, tests: list[str] | None = None, report: str = "A") -> list[str]:
    """pytest over `tests` (node ids or paths; default: the whole suite); `report` is
    pytest's -r letters: "A" lists every test, "fE" only failures."""
    # --deselect, not --ignore: a conftest's pytest_ignore_collect (boltons has one) overrides --ignore
    return [*PYTEST, f"-r{report}", *(f"--deselect={path}" for path in lib.timing_dependent),
            *(tests or lib.test_paths)]


def judge_command(lib: Library, judge_dir: str, config: str, rootdir: str, tests: list[str] | None = None) -> list[str]:
    """The judged run: like `command`, started so that nothing from the working copy configures it."""
    return ["python3", "-s", "-P", "-m", "pytest", "-p", PLUGIN, "-p", "no:cacheprovider",
            "-c", posixpath.join(judge_dir, config), f"--rootdir={rootdir}", f"--confcutdir={rootdir}",
            "-o", "addopts=", "-o", f"pythonpath={rootdir}", "--color=no", "-q", "--tb=short", "-rfE",
            *(f"--deselect={path}" for path in lib.timing_dependent), *(tests or lib.test_paths)]


def run(box: Sandbox, lib: Library, tests: list[str] | None = None, timeout: float = 120) -> TestResults:
    """Run the suite (or `tests`) under the judge in `box`, whose work dir holds the
    repository, and judge it. Raises nothing for a run that goes wrong: its `problem` says
    why. The judge's folder is left in the box, which is meant to be thrown away."""
    judge_dir = posixpath.join(box.workdir, JUDGE_DIR_PREFIX + secrets.token_hex(8))
    key = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory(prefix="agenthub-swe-judge-") as tmp:
        config = _judge_files(Path(tmp), lib, key)
        box.upload_dir(tmp, judge_dir)
    env = {**TEST_ENV, "PYTHONPATH": judge_dir, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    r = box.exec(judge_command(lib, judge_dir, config, box.workdir, tests), timeout=timeout, env=env)
    output = r.stdout + r.stderr
    try:
        report = box.read_file(posixpath.join(judge_dir, "report.jsonl"), binary=True)
    except SandboxError as e:
        return TestResults({}, r.exit_code, r.timed_out, r.duration, output, f"the judge's report could not be "
                           f"read ({e})")
    outcomes, collect_errors, problem = read_report(report, key, r.exit_code)  # type: ignore[arg-type]
    if r.timed_out:
        problem = f"the tests timed out after {timeout:g} s"
    return TestResults(outcomes, r.exit_code, r.timed_out, r.duration, output, problem, collect_errors)


def _judge_files(folder: Path, lib: Library, key: bytes) -> str:
    """The plugin, its key and the snapshot's pytest configuration, written into `folder`;
    returns the configuration's file name."""
    (folder / f"{PLUGIN}.py").write_bytes((Path(__file__).parent / "judge_plugin.py").read_bytes())
    (folder / "key").write_bytes(key)
    root = snapshot(lib)
    for name, section in CONFIG_FILES:
        path = root / name
        if path.is_file() and (name.endswith("pytest.ini") or section in path.read_text(errors="replace")):
            shutil.copyfile(path, folder / name)
            return name
    (folder / "pytest.ini").write_text("[pytest]\n")
    return "pytest.ini"


def read_report(report: bytes, key: bytes, exit_code: int) -> tuple[dict[str, str], list[str], str | None]:
    """(outcomes, collect_errors, problem) from the judge plugin's report of a run that
    exited with `exit_code`. `problem` (then no outcome counts) names the first thing that
    cannot be believed: a line not signed with `key`, records missing or repeated, a run
    that never reached its end,
    an exit status that disagrees with pytest's, pytest internals or a test function
    replaced mid-run, or an exit status 0 with failures in the report."""
    records = []
    for line in report.decode(errors="replace").split("\n"):
        if not line:
            continue
        payload, _, mac = line.rpartition("\t")
        good = hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac.encode(), good.encode()):
            return {}, [], "the judge's report holds lines the judge did not write"
        records.append(json.loads(payload))
    if sorted(rec["seq"] for rec in records) != list(range(len(records))):
        return {}, [], "records of the judge's report were removed or repeated"
    records.sort(key=lambda rec: rec["seq"])
    phases: dict[str, dict[str, dict]] = {}
    ran: dict[str, dict] = {}
    collect_errors: list[str] = []
    end = None
    for rec in records:
        if "phase" in rec:
            phases.setdefault(rec["node"], {})[rec["phase"]] = rec
        elif "ran" in rec:
            ran[rec["ran"]] = rec
        elif "collect_error" in rec:
            collect_errors.append(rec["collect_error"])
        elif "end" in rec:
            end = rec
        elif "replaced_test" in rec:
            return {}, collect_errors, f"the test {rec['replaced_test']} was replaced after it was collected"
    if end is None or end is not records[-1]:
        return {}, collect_errors, f"the test run ended before pytest finished (exit status {exit_code})"
    if end["end"] != exit_code:
        return {}, collect_errors, f"the process exited with status {exit_code}, pytest ended with {end['end']}"
    if end["changed"]:
        return {}, collect_errors, f"pytest's internals were replaced during the run ({', '.join(end['changed'][:5])})"
    outcomes = {node: _outcome(p, ran.get(node)) for node, p in phases.items()}
    failures = any(o in ("failed", "error") for o in outcomes.values()) or collect_errors
    if exit_code not in OK_EXIT and not (exit_code == 2 and collect_errors):  # 2: interrupted by collection errors
        return outcomes, collect_errors, f"pytest ended with exit status {exit_code}"
    if exit_code == 0 and failures:
        return {}, collect_errors, "pytest exited with status 0 although tests failed"
    return outcomes, collect_errors, None


def _outcome(phases: dict[str, dict], ran: dict | None) -> str:
    """One test's outcome from its setup/call/teardown records and its call record (`ran`)."""
    setup, call, teardown = phases.get("setup"), phases.get("call"), phases.get("teardown")
    if setup is None or setup["outcome"] == "failed" or setup["raw"] is not None and setup["outcome"] == "passed":
        return "error"
    if setup["outcome"] == "skipped":  # a skip marker, or xfail(run=False)
        return "xfailed" if setup["wasxfail"] else "skipped"
    if call is None:
        return "error"
    if call["wasxfail"]:
        return "xfailed" if call["outcome"] == "skipped" else "xpassed"
    if call["outcome"] == "skipped":
        return "skipped"
    if ran is None or not ran["body"]:
        return "not run"
    if call["outcome"] != "passed" or call["raw"] is not None or ran["raw"] is not None:
        return "failed"
    if teardown is None or teardown["outcome"] != "passed" or teardown["raw"] is not None:
        return "error"
    return "passed"


def failure_excerpt(output: str, max_error_lines: int = 12) -> str:
    """What a developer sees of one failing test: its own frames (code lines from test
    files) and the error, without the library frames that would say where the bug is."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^_{3,} .+ _{3,}$", line)), None)
    if start is None:
        return ""
    kept: list[str] = []
    in_test_frame = False
    errors = 0
    for line in lines[start + 1:]:
        if re.match(r"^(_{3,}|={3,}|-{3,} Captured)", line):
            break
        frame = _FRAME.match(line)
        if frame:
            in_test_frame = is_test_file(frame.group(1))
            if in_test_frame:
                kept.append(line)
        elif line.startswith("E "):
            if errors < max_error_lines:
                kept.append(line)
            errors += 1
        elif in_test_frame and line.strip():
            kept.append(line)
    if errors > max_error_lines:
        kept.append(f"E   ... ({errors - max_error_lines} more lines)")
    return _ADDRESS.sub("", "\n".join(kept))


def summary_line(output: str) -> str:
    """pytest's last line, e.g. '2 failed, 453 passed in 0.71s'."""
    for line in reversed(output.strip().splitlines()):
        if re.search(r"\d+ (passed|failed|error)", line) or "no tests ran" in line:
            return line.strip("= ")
    return ""
