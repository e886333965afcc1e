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


def split_lines(text: str, keepends: bool = False) -> list[str]:
    """Lines as git, grep and sed count them: split on "\\n" only. (`str.splitlines` also
    splits on \\r, \\v, \\f, \\x1c-\\x1e, \\x85 and U+2028/2029, which source files may
    hold: a diff made that way puts "No newline at end of file" mid-hunk.)"""
    lines = text.split("\n")
    last = lines.pop()  # "" when the text ends with a newline (or is empty)
    if keepends:
        lines = [line + "\n" for line in lines]
    return lines + [last] if last else lines


def diff(path: str, old: str | None, new: str | None) -> str:
    """The unified diff of one file, as `git diff` writes it (so `git apply` takes it);
    None stands for "no such file". Empty when nothing changed."""
    if old == new:
        return ""
    a, b = split_lines(old or "", keepends=True), split_lines(new or "", keepends=True)
    lines = list(difflib.unified_diff(a, b, "a/" + path if old is not None else "/dev/null",
                                      "b/" + path if new is not None else "/dev/null", n=3))
    if not lines:  # an empty file created or deleted: no hunk, so git needs its own header to see it
        return f"diff --git a/{path} b/{path}\n{'new' if old is None else 'deleted'} file mode 100644\n"
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n" + _NO_NEWLINE + "\n")
    return "".join(out)


def parse(patch: str) -> list[FilePatch]:
    files: list[FilePatch] = []
    lines = split_lines(patch, keepends=True)
    i = 0
    git_header = False  # a "diff --git" line opened files[-1]; its ---/+++ lines (if any) complete it
    while i < len(lines):
        line = lines[i]
        if line.startswith("diff --git ") and " b/" in line:
            path = line.rstrip("\n").rpartition(" b/")[2]
            files.append(FilePatch(path, path, path))
            git_header = True
        elif git_header and line.startswith(("new file mode", "deleted file mode")):
            if line.startswith("new"):
                files[-1].old_path = None
            else:
                files[-1].new_path = None
        elif line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = _path(line[4:]), _path(lines[i + 1][4:])
            if git_header:
                files[-1].path, files[-1].old_path, files[-1].new_path = new or old or "", old, new
            else:
                files.append(FilePatch(new or old or "", old, new))  # type: ignore[arg-type]
            git_header = False
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
    old = split_lines(text or "", keepends=True)
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
