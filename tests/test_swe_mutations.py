"""The SWE bug injector and the diff machinery, on code small enough to read."""

import ast
import difflib

import pytest

from agenthub.environments.swe import mutations, patches
from agenthub.environments.swe.libraries import is_test_file

MODULE = '''\
LIMIT = 10  # module level: never mutated


def clamp(values, low=0, strict=True, name="clamp"):
    """Keep values within [low, LIMIT]."""
    out = []
    for v in values:
        if v < low or v > LIMIT:
            continue
        out.append(max(v, low) + 1)
    total = sum(out)
    return out if strict and total >= 0 else None


class Box:
    def pick(self, items, key):
        if not items:
            return None
        return sorted(items, key)[-1] * 2
'''


def _changed_lines(old: str, new: str) -> list[str]:
    return [line for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def test_every_kind_is_found_and_applies_as_a_minimal_edit():
    sites = mutations.sites("m.py", MODULE)
    assert {s.kind for s in sites} == set(mutations.KINDS)
    assert all(s.function in ("clamp", "Box.pick") for s in sites)  # module-level LIMIT is never touched
    for site in sites:
        mutated = mutations.apply(MODULE, site)
        if mutated is None:
            continue
        ast.parse(mutated)
        assert mutated != MODULE
        removed = [line for line in _changed_lines(MODULE, mutated) if line.startswith("-")]
        added = [line for line in _changed_lines(MODULE, mutated) if line.startswith("+")]
        if site.kind == "drop_statement":
            assert not added and removed
        else:  # one line changed, in the original's own formatting (quotes, spacing)
            assert len(removed) == len(added) == 1, site


@pytest.mark.parametrize("kind, before, after", [
    ("flip_comparison", "        if v < low or v > LIMIT:", "        if v >= low or v > LIMIT:"),
    ("off_by_one", "        if v < low or v > LIMIT:", "        if v <= low or v > LIMIT:"),
    ("wrong_operator", "        if v < low or v > LIMIT:", "        if v < low and v > LIMIT:"),
    ("negate_condition", "        if not items:", "        if items:"),
    ("swap_arguments", "        out.append(max(v, low) + 1)", "        out.append(max(low, v) + 1)"),
    ("wrong_default", 'def clamp(values, low=0, strict=True, name="clamp"):',
     'def clamp(values, low=0, strict=False, name="clamp"):'),
    ("wrong_default", 'def clamp(values, low=0, strict=True, name="clamp"):',
     'def clamp(values, low=0, strict=True, name=""):'),
    ("drop_statement", "    total = sum(out)", None),
])
def test_specific_mutations(kind, before, after):
    made = set()
    for site in mutations.sites("m.py", MODULE):
        if site.kind == kind:
            mutated = mutations.apply(MODULE, site)
            if mutated is not None:
                made.add(tuple(_changed_lines(MODULE, mutated)))
    expected = ("-" + before,) + (("+" + after,) if after is not None else ())
    assert expected in made


def test_edits_are_checked_against_the_intended_tree():
    # "not x or y" would mean "(not x) or y": the injector must write "not (x or y)"
    text = "def f(x, y):\n    if x or y:\n        return 1\n    return 0\n"
    (site,) = [s for s in mutations.sites("p.py", text) if s.kind == "negate_condition"]
    assert "    if not (x or y):\n" in mutations.apply(text, site)


def test_patches_round_trip_including_missing_final_newline_creation_and_deletion():
    old, new = "a\nb\nc\nd\ne\nf\ng\n", "a\nb\nC\nd\ne\nf\ng"
    patch = patches.diff("x.py", old, new)
    assert "\\ No newline at end of file" in patch
    assert patches.apply({"x.py": old}, patch) == {"x.py": new}
    reverse = patches.diff("x.py", new, old)
    assert patches.apply({"x.py": new}, reverse) == {"x.py": old}
    created = patches.diff("new.py", None, "print(1)\n")
    assert patches.apply({}, created) == {"new.py": "print(1)\n"}
    deleted = patches.diff("x.py", old, None)
    assert patches.apply({"x.py": old}, deleted) == {"x.py": None}
    hunk = patches.parse(patch)[0].hunks[0]
    assert "c\n" in hunk.old and "C\n" in hunk.new


def test_a_patch_that_does_not_fit_is_refused():
    patch = patches.diff("x.py", "a\nb\nc\n", "a\nB\nc\n")
    with pytest.raises(patches.PatchError):
        patches.apply({"x.py": "a\nX\nc\n"}, patch)
    with pytest.raises(patches.PatchError):
        patches.apply({}, patch)


def test_test_files_are_recognised():
    for path in ("tests/test_a.py", "test_inflection.py", "toolz/tests/test_x.py", "pkg/conftest.py",
                 "tests/__init__.py", "a_test.py"):
        assert is_test_file(path), path
    for path in ("toolz/itertoolz.py", "parse/__init__.py", "inflection/__init__.py", "setup.py"):
        assert not is_test_file(path), path
