"""Running a library's own test suite in a sandbox and reading what happened.

Everything that judges a task — validating a generated bug, the agent's `run_tests`
tool, the final evaluation — runs pytest the same way, from the repository root with
the library imported from the working copy, no cache written into the repo, and a
fixed hash seed. Outcomes are read from pytest's `-rA` summary (one line per test, the
full node id), which every pytest since 6 prints the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agenthub.sandbox import Sandbox

from .libraries import Library, is_test_file

PYTEST = ["python3", "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "--color=no", "-q",
          "--tb=short"]
TEST_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "COLUMNS": "120"}

_SUMMARY_LINE = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS) (.+)$")
_FRAME = re.compile(r"^(\S[^:]*\.py):\d+: in ")
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")  # object addresses differ from run to run


@dataclass
class TestResults:
    outcomes: dict[str, str] = field(default_factory=dict)  # node id -> passed|failed|error|xfailed|xpassed
    exit_code: int = 0
    timed_out: bool = False
    duration: float = 0.0
    output: str = ""

    @property
    def passed(self) -> set[str]:
        return {t for t, o in self.outcomes.items() if o in ("passed", "xfailed")}

    @property
    def collection_errors(self) -> list[str]:
        """Test files that could not even be imported."""
        return [t for t, o in self.outcomes.items() if o == "error" and "::" not in t]

    @property
    def broken(self) -> bool:
        """The run itself went wrong (timeout, internal error, nothing collected)."""
        return self.timed_out or self.exit_code not in (0, 1) or bool(self.collection_errors)


def command(lib: Library, tests: list[str] | None = None, report: str = "A") -> list[str]:
    """pytest over `tests` (node ids or paths; default: the whole suite); `report` is
    pytest's -r letters: "A" lists every test (to read outcomes), "fE" only failures."""
    # --deselect, not --ignore: a conftest's pytest_ignore_collect (boltons has one) overrides --ignore
    return [*PYTEST, f"-r{report}", *(f"--deselect={path}" for path in lib.timing_dependent),
            *(tests or lib.test_paths)]


def run(box: Sandbox, lib: Library, tests: list[str] | None = None, timeout: float = 120) -> TestResults:
    r = box.exec(command(lib, tests), timeout=timeout, env=TEST_ENV)
    output = r.stdout + r.stderr
    return TestResults(parse_outcomes(output), r.exit_code, r.timed_out, r.duration, output)


def parse_outcomes(output: str) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    in_summary = False
    for line in output.splitlines():
        if "short test summary info" in line:
            in_summary = True
            continue
        m = _SUMMARY_LINE.match(line) if in_summary else None
        if m:
            word, rest = m.groups()
            node = rest if word == "PASSED" else rest.split(" - ", 1)[0]
            outcomes[node.strip()] = {"PASSED": "passed", "FAILED": "failed", "ERROR": "error",
                                      "XFAIL": "xfailed", "XPASS": "xpassed"}[word]
    return outcomes


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
