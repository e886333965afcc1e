"""Unified diffs: how bug fixes, injected bugs and agents' submissions are written down.

The diffs are the ones `git diff` prints (`--- a/PATH` / `+++ b/PATH`, three lines of
context), so a person can read an instance or a submission with any diff tool. Applying
one here is strict — every context line must match where the hunk says — because a
patch that only half-fits is a broken instance, not something to guess around.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_NO_NEWLINE = "\\ No newline at end of file"


class PatchError(ValueError):
    """A patch that does not apply to the files it names."""


@dataclass
class Hunk:
    old_start: int  # 1-based line in the old file
    lines: list[str] = field(default_factory=list)  # each with its ' ', '-' or '+' prefix, newline kept

    @property
    def old(self) -> str:
        return "".join(line[1:] for line in self.lines if line[0] in " -")

    @property
    def new(self) -> str:
        return "".join(line[1:] for line in self.lines if line[0] in " +")


@dataclass
class FilePatch:
    path: str
    old_path: str | None  # None: the file is created
    new_path: str | None  # None: the file is deleted
    hunks: list[Hunk] = field(default_factory=list)


def diff(path: str, old: str | None, new: str | None) -> str:
    """The unified diff of one file; None stands for "no such file"."""
    a = (old or "").splitlines(keepends=True)
    b = (new or "").splitlines(keepends=True)
    lines = list(difflib.unified_diff(a, b, "a/" + path if old is not None else "/dev/null",
                                      "b/" + path if new is not None else "/dev/null", n=3))
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n" + _NO_NEWLINE + "\n")
    return "".join(out)


def parse(patch: str) -> list[FilePatch]:
    files: list[FilePatch] = []
    lines = patch.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = _path(line[4:]), _path(lines[i + 1][4:])
            files.append(FilePatch(new or old or "", old, new))  # type: ignore[arg-type]
            i += 2
            continue
        m = _HUNK.match(line)
        if m and files:
            files[-1].hunks.append(Hunk(int(m.group(1))))
        elif files and files[-1].hunks and line[:1] in (" ", "-", "+"):
            files[-1].hunks[-1].lines.append(line if line.endswith("\n") else line + "\n")
        elif line.rstrip("\n") == _NO_NEWLINE and files and files[-1].hunks:
            hunk = files[-1].hunks[-1]
            hunk.lines[-1] = hunk.lines[-1][:-1]  # the line before has no newline
        i += 1
    return files


def apply_file(text: str | None, file_patch: FilePatch) -> str | None:
    """The new content of one file (None: deleted)."""
    if file_patch.new_path is None:
        return None
    old = (text or "").splitlines(keepends=True)
    out: list[str] = []
    pos = 0  # lines of `old` consumed
    for hunk in file_patch.hunks:
        start = max(hunk.old_start - 1, 0) if any(line[0] in " -" for line in hunk.lines) else hunk.old_start
        expected = [line[1:] for line in hunk.lines if line[0] in " -"]
        if start < pos or old[start:start + len(expected)] != expected:
            raise PatchError(f"{file_patch.path}: hunk at line {hunk.old_start} does not match the file")
        out += old[pos:start] + [line[1:] for line in hunk.lines if line[0] in " +"]
        pos = start + len(expected)
    return "".join(out + old[pos:])


def apply(files: dict[str, str], patch: str) -> dict[str, str | None]:
    """The changed files after applying `patch` to `files` (path -> text; None: deleted)."""
    changed: dict[str, str | None] = {}
    for fp in parse(patch):
        source = fp.old_path
        if source is not None and source not in files:
            raise PatchError(f"{source}: the patch changes a file that does not exist")
        changed[fp.path] = apply_file(files.get(source) if source else None, fp)
    return changed


def changed_paths(patch: str) -> list[str]:
    return [fp.path for fp in parse(patch)]


def _path(header: str) -> str | None:
    name = header.rstrip("\n").split("\t")[0].strip()
    if name == "/dev/null":
        return None
    return name[2:] if name[:2] in ("a/", "b/") else name
