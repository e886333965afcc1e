"""The agent's tools on a repository in a sandbox: a shell, a file viewer, an editor,
the test runner and `submit`, as OpenAI function schemas plus their implementation.

The editor works like the SWE-agent / Anthropic text editor: `view` prints numbered
lines, `str_replace` needs an `old_str` that occurs exactly once (so an edit never
lands somewhere unintended), `insert` goes after a line number, `create` writes a whole
file. Every tool answers with text; a tool that could not do what was asked says why
and reports failure, which the env counts in its rewards.
"""

from __future__ import annotations

import posixpath
import shlex
import tarfile
from dataclasses import dataclass

from agenthub.sandbox import Sandbox, SandboxError
from agenthub.types import ToolSpec, tool_spec

from . import testrun
from .patches import split_lines
from .libraries import Library

MAX_OUTPUT_CHARS = 10_000
MAX_VIEW_LINES = 400
DEFAULT_COMMAND_TIMEOUT = 60
MAX_COMMAND_TIMEOUT = 600

TOOLS: list[ToolSpec] = [
    tool_spec("bash", "Run a shell command in the repository (the working directory is /workspace). "
              "There is no network. Long output is cut in the middle.",
              {"command": {"type": "string", "description": "the command line, run with sh -c"},
               "timeout": {"type": "integer", "description": f"seconds before the command is killed "
                           f"(default {DEFAULT_COMMAND_TIMEOUT})"}},
              required=["command"]),
    tool_spec("view", "Show a file with line numbers (all of it, or lines start_line..end_line), or list a "
              "directory.",
              {"path": {"type": "string", "description": "relative to /workspace, or absolute"},
               "start_line": {"type": "integer"}, "end_line": {"type": "integer"}},
              required=["path"]),
    tool_spec("str_replace", "Replace the text old_str, which must occur exactly once in the file, by new_str.",
              {"path": {"type": "string"}, "old_str": {"type": "string"}, "new_str": {"type": "string"}},
              required=["path", "old_str", "new_str"]),
    tool_spec("insert", "Insert text after line `line` of a file (0 inserts at the top).",
              {"path": {"type": "string"}, "line": {"type": "integer"}, "text": {"type": "string"}},
              required=["path", "line", "text"]),
    tool_spec("create", "Create a file with the given content (an existing file is overwritten).",
              {"path": {"type": "string"}, "content": {"type": "string"}},
              required=["path", "content"]),
    tool_spec("run_tests", "Run the repository's test suite with pytest, or only the given tests "
              "(node ids like tests/test_x.py::test_y, or paths).",
              {"tests": {"type": "array", "items": {"type": "string"}}},
              required=[]),
    tool_spec("submit", "Submit your changes to the repository for evaluation. This ends the episode.", {},
              required=[]),
]


@dataclass
class ToolResult:
    text: str
    ok: bool = True  # False: the tool could not do what was asked (bad path, no unique match, ...)


class RepoTools:
    """The tools (all but `submit`, which the env handles) bound to one sandbox."""

    def __init__(self, box: Sandbox, lib: Library, workdir: str = "/workspace", test_timeout: float = 300):
        self.box, self.lib, self.workdir, self.test_timeout = box, lib, workdir, test_timeout

    def call(self, name: str, args: dict, time_left: float) -> ToolResult:
        """Run tool `name`; `time_left` (seconds of the episode's wall budget) caps any
        command. Never raises: what a tool cannot do is answered `Error: ...`."""
        if not isinstance(args, dict):
            return ToolResult("Error: the arguments must be a JSON object", ok=False)
        spec = next((t["function"] for t in TOOLS if t["function"]["name"] == name), None)
        missing = [a for a in (spec or {}).get("parameters", {}).get("required", []) if a not in args]
        if missing:
            return ToolResult(f"Error: {name} needs the argument(s) {', '.join(missing)}", ok=False)
        try:
            if name == "bash":
                return self.bash(str(args["command"]), _seconds(args.get("timeout"), time_left))
            if name == "view":
                return self.view(self._path(args["path"]), args.get("start_line"), args.get("end_line"))
            if name == "str_replace":
                return self.str_replace(self._path(args["path"]), str(args["old_str"]), str(args["new_str"]))
            if name == "insert":
                return self.insert(self._path(args["path"]), args["line"], str(args["text"]))
            if name == "create":
                return self.create(self._path(args["path"]), str(args["content"]))
            if name == "run_tests":
                return self.run_tests(args.get("tests"), min(self.test_timeout, time_left))
        except (SandboxError, ValueError, TypeError, OverflowError) as e:
            return ToolResult(f"Error: {e}", ok=False)
        except (OSError, KeyError, tarfile.TarError, UnicodeError) as e:  # a backend's file layer, whatever it says
            return ToolResult(f"Error: {args.get('path', name)}: {e!r}", ok=False)
        return ToolResult(f"Error: unknown tool {name!r}", ok=False)

    def bash(self, command: str, timeout: float) -> ToolResult:
        r = self.box.exec(command, timeout=timeout)
        text = clip(r.stdout + (("\n" if r.stdout and r.stderr else "") + r.stderr if r.stderr else ""))
        if r.timed_out:
            return ToolResult(f"{text}\n[the command timed out after {timeout:g} s and was killed]".strip(), ok=False)
        return ToolResult(f"{text}\n[exit code {r.exit_code}]".strip())

    def view(self, path: str, start: object = None, end: object = None) -> ToolResult:
        try:
            text = self._read(path)
        except SandboxError as e:
            listing = self._listing(path)
            if listing is None:
                return ToolResult(f"Error: {e}", ok=False)
            return ToolResult(clip(listing))
        lines = split_lines(text)
        first = max(1, int(start)) if start is not None else 1  # type: ignore[call-overload]
        last = min(len(lines), int(end)) if end is not None else len(lines)  # type: ignore[call-overload]
        if first > max(last, 1):
            return ToolResult(f"Error: {path} has {len(lines)} lines; line {first} is past its end", ok=False)
        note = ""
        if end is None and last - first + 1 > MAX_VIEW_LINES:
            last = first + MAX_VIEW_LINES - 1
            note = f"\n[showing lines {first}-{last} of {len(lines)}; pass start_line/end_line to see more]"
        return ToolResult(clip(numbered(lines, first, last)) + note)

    def _listing(self, path: str) -> str | None:
        """Two levels of the directory `path` (sandbox paths, hidden files and caches left
        out), or None when it is not a directory. Run with the directory as the working
        directory, so every backend maps the path the same way as its file methods do."""
        try:
            r = self.box.exec(["find", ".", "-maxdepth", "2", "-not", "-path", "*/.*", "-not", "-name", "__pycache__"],
                              timeout=30, cwd=path)
        except SandboxError:
            return None
        if r.exit_code != 0 or not r.stdout.startswith("."):
            return None
        return "\n".join(sorted(posixpath.normpath(posixpath.join(path, entry)) for entry in r.stdout.split("\n")
                                if entry))

    def str_replace(self, path: str, old: str, new: str) -> ToolResult:
        if not old:
            return ToolResult("Error: old_str is empty", ok=False)
        text = self._read(path)
        count = text.count(old)
        if count != 1:
            why = "does not occur" if count == 0 else f"occurs {count} times (include more lines to make it unique)"
            return ToolResult(f"Error: old_str {why} in {path}; nothing was changed", ok=False)
        self.box.write_file(path, text.replace(old, new, 1))
        line = text[:text.index(old)].count("\n") + 1
        return ToolResult(f"Edited {path}.\n" + self._snippet(text.replace(old, new, 1), line, new.count("\n") + 1))

    def insert(self, path: str, line: object, new_text: str) -> ToolResult:
        lines = split_lines(self._read(path), keepends=True)
        if isinstance(line, bool) or not isinstance(line, (int, str)):
            return ToolResult("Error: line must be an integer", ok=False)
        at = int(line)
        if not 0 <= at <= len(lines):
            return ToolResult(f"Error: line must be between 0 and {len(lines)} for {path}", ok=False)
        if lines and not lines[-1].endswith("\n") and at == len(lines):
            lines[-1] += "\n"
        added = new_text if new_text.endswith("\n") else new_text + "\n"
        result = "".join(lines[:at]) + added + "".join(lines[at:])
        self.box.write_file(path, result)
        return ToolResult(f"Inserted after line {at} of {path}.\n" + self._snippet(result, at + 1, added.count("\n")))

    def create(self, path: str, content: str) -> ToolResult:
        self.box.write_file(path, content)
        return ToolResult(f"Wrote {path} ({len(split_lines(content))} lines).")

    def run_tests(self, tests: object, timeout: float) -> ToolResult:
        if tests is not None and (not isinstance(tests, list) or not all(isinstance(t, str) for t in tests)):
            return ToolResult("Error: tests must be a list of strings", ok=False)
        r = self.box.exec(testrun.command(self.lib, tests or None, report="fE"), timeout=timeout, env=testrun.TEST_ENV)
        text = clip(r.stdout + r.stderr)
        if r.timed_out:
            return ToolResult(f"{text}\n[the tests timed out after {timeout:g} s and were killed]", ok=False)
        return ToolResult(f"$ {shlex.join(testrun.command(self.lib, tests or None, report='fE'))}\n{text}")

    def _read(self, path: str) -> str:
        return self.box.read_file(path)  # type: ignore[return-value]

    def _path(self, path: object) -> str:
        if not isinstance(path, str) or not path.strip():
            raise ValueError("path must be a non-empty string")
        return posixpath.normpath(posixpath.join(self.workdir, path.strip()))

    @staticmethod
    def _snippet(text: str, line: int, n_lines: int, context: int = 3) -> str:
        lines = split_lines(text)
        return numbered(lines, max(1, line - context), min(len(lines), line + n_lines - 1 + context))


def numbered(lines: list[str], first: int, last: int) -> str:
    """Lines first..last (1-based) as `view` prints them: the number, a tab, the line."""
    return "\n".join(f"{n:6d}\t{lines[n - 1]}" for n in range(first, last + 1))


def clip(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    """Keep the head and tail of long output: the command line and the verdict live there."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit} characters cut ...]\n{text[-half:]}"


def _seconds(value: object, time_left: float) -> float:
    seconds = float(value) if value is not None else DEFAULT_COMMAND_TIMEOUT  # type: ignore[arg-type]
    if seconds <= 0:
        raise ValueError("timeout must be a positive number of seconds")
    return max(1.0, min(seconds, MAX_COMMAND_TIMEOUT, time_left))
