"""What an agent submitted: its working copy compared with the repository it was given.

The base is the task's starting state: the pristine snapshot with the bug's files
(`overrides`) in place. Test files, everything that configures the test run (pytest
config files, conftest.py, start-up hooks, distribution metadata: `libraries.is_protected`)
and run byproducts (caches, bytecode) are left out, so editing a test, a conftest or a
config can never change how a submission is judged: evaluation starts from the
snapshot, whose tests and configuration are the maintainers'.
"""

from __future__ import annotations

from pathlib import Path

from . import patches
from .libraries import is_ignored, is_protected


def changes(snapshot: Path, overrides: dict[str, str | None], working: Path) -> dict[str, bytes | None]:
    """Every unprotected file that differs from the base: path -> new bytes (None: deleted)."""
    old, new = _files(snapshot), _files(working)
    paths = old.keys() | new.keys() | {p for p in overrides if not is_protected(p)}
    changed: dict[str, bytes | None] = {}
    for path in sorted(paths):
        before = base_bytes(snapshot, overrides, path)
        after = new[path].read_bytes() if path in new else None
        if before != after:
            changed[path] = after
    return changed


def protected_changes(snapshot: Path, working: Path) -> list[str]:
    """Protected files (tests, test configuration) the agent added, changed or deleted:
    they are not judged, the snapshot's are. Symlinks count as changes, never followed."""
    before, after = _protected(snapshot), _protected(working)
    return sorted(path for path in before.keys() | after.keys()
                  if path not in before or path not in after or after[path].is_symlink()
                  or after[path].read_bytes() != before[path].read_bytes())


def _protected(root: Path) -> dict[str, Path]:
    found = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if (p.is_symlink() or p.is_file()) and is_protected(rel) and not is_ignored(rel):
            found[rel] = p
    return found


def base_bytes(snapshot: Path, overrides: dict[str, str | None], path: str) -> bytes | None:
    """A file as the agent was given it (None: no such file)."""
    if path in overrides:
        text = overrides[path]
        return None if text is None else text.encode()
    return (snapshot / path).read_bytes() if (snapshot / path).is_file() else None


def as_patch(snapshot: Path, overrides: dict[str, str | None], changed: dict[str, bytes | None]) -> str:
    """The changes as one unified diff (binary files are named, not shown)."""
    parts = []
    for path, after in changed.items():
        before = base_bytes(snapshot, overrides, path)
        try:
            parts.append(patches.diff(path, _text(before), _text(after)))
        except UnicodeDecodeError:
            parts.append(f"Binary files a/{path} and b/{path} differ\n")
    return "".join(parts)


def _files(root: Path) -> dict[str, Path]:
    found = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not p.is_symlink() and not is_ignored(rel) and not is_protected(rel):
            found[rel] = p
    return found


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode()
