"""Bugs made the SWE-smith way: small program transformations of real functions.

`sites(path, text)` lists every place in a module where one of the `KINDS` of
transformation applies (inside functions only); `apply(text, site)` makes that one
change. The change is a minimal text edit — one operator token, one constant, two
arguments swapped, `not ` inserted, whole lines deleted — so the bug hides in the
maintainers' own formatting instead of standing out as a reformatted line. Each
mutated file is parsed back and must equal the intended mutated syntax tree, so an
edit that would read differently in context (operator precedence, say) is dropped.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Callable, Iterator

KINDS: dict[str, str] = {
    "flip_comparison": "a comparison replaced by its negation (== and !=, < and >=, in and not in, is and is not)",
    "off_by_one": "a boundary moved by one (< and <=, > and >=, an integer constant plus or minus one)",
    "negate_condition": "the condition of an if, while or conditional expression negated",
    "wrong_operator": "an arithmetic, bitwise or boolean operator replaced (+ and -, * and /, and and or, ...)",
    "swap_arguments": "the first two positional arguments of a call swapped",
    "drop_statement": "a statement (or a small if block) of a function body deleted",
    "wrong_default": "a parameter's default value changed (True and False, n and n + 1, 'x' and '')",
}

_NEGATED_COMPARISON = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt,
                       ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
                       ast.In: ast.NotIn, ast.NotIn: ast.In}
_BOUNDARY = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
_WRONG_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
                ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd,
                ast.LShift: ast.RShift, ast.RShift: ast.LShift, ast.Pow: ast.Mult}
_OPERATOR_TEXT = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
                  ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.Add: "+",
                  ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.BitAnd: "&",
                  ast.BitOr: "|", ast.LShift: "<<", ast.RShift: ">>", ast.Pow: "**", ast.And: "and", ast.Or: "or"}
_DROPPABLE = (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return, ast.Raise, ast.Delete, ast.If)
_MAX_DROPPED_LINES = 6


@dataclass(frozen=True)
class Site:
    """One possible bug: which node (its index in `ast.walk` order) and which change."""

    path: str
    kind: str
    node_index: int
    variant: int  # which change of this kind at this node
    function: str  # qualified name of the enclosing function
    line: int


class _Source:
    """A module's text with node spans as character offsets (ast columns are UTF-8 bytes)."""

    def __init__(self, text: str):
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col: int) -> int:
        return self.starts[lineno - 1] + len(self.lines[lineno - 1].encode()[:col].decode(errors="replace"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def segment(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.text[start:end]

    def replace(self, start: int, end: int, new: str) -> str:
        return self.text[:start] + new + self.text[end:]


@dataclass
class _Change:
    """One mutation at one node: how the syntax tree changes (`tree`, returning the
    node that takes its place, or None to delete the statement) and the candidate
    text edits that should produce that tree (`texts`)."""

    kind: str
    tree: Callable[[ast.AST], ast.AST | None]
    texts: Callable[[_Source, ast.AST], list[str | None]]


def sites(path: str, text: str) -> list[Site]:
    """Every single-change mutation of the functions in one module, in source order."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    parents, functions = _context(tree)
    found = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) not in functions:
            continue
        counts: dict[str, int] = {}
        for change in _changes(node, parents.get(id(node))):
            found.append(Site(path, change.kind, index, counts.get(change.kind, 0), functions[id(node)], node.lineno))
            counts[change.kind] = counts.get(change.kind, 0) + 1
    return sorted(found, key=lambda s: (s.line, s.node_index, s.kind, s.variant))


def apply(text: str, site: Site) -> str | None:
    """The module with `site`'s change made, or None if no clean text edit makes it."""
    tree = ast.parse(text)
    parents, _ = _context(tree)
    node = list(ast.walk(tree))[site.node_index]
    parent = parents.get(id(node))
    changes = [c for c in _changes(node, parent) if c.kind == site.kind]
    if site.variant >= len(changes):
        return None
    change = changes[site.variant]
    candidates = change.texts(_Source(text), node)  # computed from the unchanged node
    replacement = change.tree(node)
    if replacement is None:
        next(body for body in _bodies(parent) if any(s is node for s in body)).remove(node)
    else:
        _replace_child(parent, node, replacement)
    intended = ast.dump(tree)
    return next((c for c in candidates if c is not None and c != text and _dump(c) == intended), None)


def _changes(node: ast.AST, parent: ast.AST | None) -> Iterator[_Change]:
    """The mutations possible at `node`."""
    single_line = getattr(node, "lineno", None) is not None and node.lineno == node.end_lineno
    if isinstance(node, ast.Compare) and single_line:
        for i, op in enumerate(node.ops):
            yield _compare_change("flip_comparison", i, _NEGATED_COMPARISON[type(op)])
            if type(op) in _BOUNDARY:
                yield _compare_change("off_by_one", i, _BOUNDARY[type(op)])
    if isinstance(node, ast.BinOp) and single_line and type(node.op) in _WRONG_BINOP and not _is_text_op(node):
        yield _operator_change(_WRONG_BINOP[type(node.op)])
    if isinstance(node, ast.BoolOp) and single_line:
        yield _operator_change(ast.Or if isinstance(node.op, ast.And) else ast.And)
    if _is_int(node) and isinstance(parent, (ast.BinOp, ast.Compare, ast.Subscript, ast.Slice)):
        yield _constant_change("off_by_one", node.value + 1)
        if node.value > 0:
            yield _constant_change("off_by_one", node.value - 1)
    if isinstance(parent, (ast.If, ast.While, ast.IfExp)) and parent.test is node and single_line:
        yield _Change("negate_condition", _negate, _negated_texts)
    if isinstance(node, ast.Call) and single_line and len(node.args) >= 2 \
            and not any(isinstance(a, ast.Starred) for a in node.args[:2]) \
            and ast.dump(node.args[0]) != ast.dump(node.args[1]):
        yield _Change("swap_arguments", _swap_first_args, _swapped_texts)
    if isinstance(parent, ast.arguments) and isinstance(node, ast.Constant):
        changed = _wrong_default(node.value)
        if changed is not None:
            yield _constant_change("wrong_default", changed)
    if isinstance(node, _DROPPABLE) and parent is not None and _droppable(node, parent):
        yield _Change("drop_statement", lambda n: None, lambda src, n: [_delete_lines(src, n)])


def _compare_change(kind: str, i: int, new_op: type) -> _Change:
    def tree(node: ast.AST) -> ast.AST:
        node.ops[i] = new_op()  # type: ignore[attr-defined]
        return node

    def texts(src: _Source, node: ast.AST) -> list[str | None]:
        left = node.left if i == 0 else node.comparators[i - 1]  # type: ignore[attr-defined]
        return [_replace_operator(src, left, node.comparators[i], type(node.ops[i]), new_op)]  # type: ignore[attr-defined]
    return _Change(kind, tree, texts)


def _operator_change(new_op: type) -> _Change:
    """A BinOp's operator, or every `and`/`or` of a BoolOp."""
    def tree(node: ast.AST) -> ast.AST:
        node.op = new_op()  # type: ignore[attr-defined]
        return node

    def texts(src: _Source, node: ast.AST) -> list[str | None]:
        if isinstance(node, ast.BinOp):
            return [_replace_operator(src, node.left, node.right, type(node.op), new_op)]
        text: str | None = src.text
        for right, left in reversed(list(zip(node.values[1:], node.values))):  # type: ignore[attr-defined]
            text = _replace_operator(_Source(text), left, right, type(node.op), new_op) if text else None  # type: ignore[attr-defined]
        return [text]
    return _Change("wrong_operator", tree, texts)


def _constant_change(kind: str, value: object) -> _Change:
    def tree(node: ast.AST) -> ast.AST:
        node.value = value  # type: ignore[attr-defined]
        return node

    def texts(src: _Source, node: ast.AST) -> list[str | None]:
        start, end = src.span(node)
        if isinstance(value, str):  # keep the original prefix and quotes: "abc" -> ""
            old = src.text[start:end]
            quote_at = min(i for i in (old.find("'"), old.find('"')) if i >= 0)
            quote = old[quote_at:quote_at + 3] if old[quote_at:quote_at + 3] in ("'''", '"""') else old[quote_at]
            return [src.replace(start, end, old[:quote_at] + quote + value + quote)]
        return [src.replace(start, end, repr(value))]
    return _Change(kind, tree, texts)


def _negate(node: ast.AST) -> ast.AST:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return node.operand
    return ast.UnaryOp(ast.Not(), node)


def _negated_texts(src: _Source, node: ast.AST) -> list[str | None]:
    start, end = src.span(node)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return [src.replace(start, end, src.segment(node.operand))]
    old = src.text[start:end]
    return [src.replace(start, end, f"not {old}"), src.replace(start, end, f"not ({old})")]


def _swap_first_args(node: ast.AST) -> ast.AST:
    node.args[0], node.args[1] = node.args[1], node.args[0]  # type: ignore[attr-defined]
    return node


def _swapped_texts(src: _Source, node: ast.AST) -> list[str | None]:
    (s0, e0), (s1, e1) = src.span(node.args[0]), src.span(node.args[1])  # type: ignore[attr-defined]
    t = src.text
    return [t[:s0] + t[s1:e1] + t[e0:s1] + t[s0:e0] + t[e1:]]


def _replace_operator(src: _Source, left: ast.AST, right: ast.AST, old: type, new: type) -> str | None:
    """Replace the operator token between two operands (the gap may hold parentheses)."""
    gap_start, gap_end = src.span(left)[1], src.span(right)[0]
    word = _OPERATOR_TEXT[old]
    pattern = r"\s+".join(map(re.escape, word.split())) if word[0].isalpha() else re.escape(word)
    pattern = rf"\b{pattern}\b" if word[0].isalpha() else rf"(?<![<>=!*/&|]){pattern}(?![<>=*/&|])"
    found = list(re.finditer(pattern, src.text[gap_start:gap_end]))
    if len(found) != 1:
        return None
    return src.replace(gap_start + found[0].start(), gap_start + found[0].end(), _OPERATOR_TEXT[new])


def _wrong_default(value: object) -> object | None:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str) and value:
        return ""
    return None


def _is_int(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def _is_text_op(node: ast.BinOp) -> bool:
    """String concatenation or %-formatting: swapping those only raises TypeError everywhere."""
    return any(isinstance(side, ast.JoinedStr) or (isinstance(side, ast.Constant) and isinstance(side.value, str))
               for side in (node.left, node.right))


def _droppable(node: ast.stmt, parent: ast.AST) -> bool:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return False  # a docstring or a bare constant: deleting it changes nothing
    if isinstance(node, ast.If) and (node.orelse or node.end_lineno - node.lineno >= _MAX_DROPPED_LINES):
        return False
    return any(any(s is node for s in body) and len(body) >= 2 for body in _bodies(parent))


def _delete_lines(src: _Source, node: ast.AST) -> str | None:
    """Delete the lines of a statement that has them to itself (a trailing comment may go too)."""
    start, end = src.span(node)
    line_start, line_end = src.starts[node.lineno - 1], src.starts[node.end_lineno]
    before, after = src.text[line_start:start], src.text[end:line_end].strip()
    if before.strip() or (after and not after.startswith("#")):
        return None
    return src.replace(line_start, line_end, "")


def _bodies(node: ast.AST) -> Iterator[list[ast.stmt]]:
    for name in ("body", "orelse", "finalbody"):
        value = getattr(node, name, None)
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            yield value


def _replace_child(parent: ast.AST | None, old: ast.AST, new: ast.AST) -> None:
    if parent is None or old is new:
        return
    for name, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, name, new)
        elif isinstance(value, list):
            value[:] = [new if item is old else item for item in value]


def _context(tree: ast.AST) -> tuple[dict[int, ast.AST], dict[int, str]]:
    """Each node's parent, and for nodes inside a function, that function's qualified name."""
    parents: dict[int, ast.AST] = {}
    functions: dict[int, str] = {}

    def visit(node: ast.AST, scope: str, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
            if function is not None:
                functions[id(child)] = function
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{scope}.{child.name}" if scope else child.name
                is_function = not isinstance(child, ast.ClassDef)
                visit(child, name, name if is_function else function)  # its defaults and body are its own
            else:
                visit(child, scope, function)
    visit(tree, "", None)
    return parents, functions


def _dump(text: str) -> str | None:
    try:
        return ast.dump(ast.parse(text))
    except SyntaxError:
        return None
