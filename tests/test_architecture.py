"""The import graph stays layered: no cycles, no import from a lower layer up to a
higher one (see ARCHITECTURE.md), and the light entry points load no torch.

Modules are named as `setup.py` installs them (`rewards/x.py` is `agenthub.rewards.x`).
Every `import` counts, at module level or inside a function (a lazy import still
ties the two modules together, so it counts for cycles and for layers alike);
imports under `if TYPE_CHECKING:` do not, since they never run. Code found by name at
run time (`load_object("agenthub.trainers.hf_agent:HFAgent")`, entry points) is not an
import: that is how lower layers reach plugins without depending on them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"agenthub": "agenthub", "agenthub.environments": "environments", "agenthub.rewards": "rewards",
           "agenthub.trainers": "trainers", "agenthub.sandbox": "sandbox"}

# Lowest first. A module belongs to the group with the longest matching prefix; it may
# import its own group and any group of a lower rank. Groups of equal rank are siblings
# and may not import each other.
LAYERS: list[tuple[int, str, tuple[str, ...]]] = [
    (0, "ground", ("agenthub.errors", "agenthub.messages", "agenthub.trajectory", "agenthub.trajectory_io",
                   "agenthub.types", "agenthub.spaces", "agenthub.loading", "agenthub.tool_parsers",
                   "agenthub.actions", "agenthub.env", "agenthub.auth", "agenthub.scoring")),
    (1, "sandbox", ("agenthub.sandbox",)),
    (2, "core", ("agenthub",)),
    (3, "rewards", ("agenthub.rewards",)),
    (3, "environments", ("agenthub.environments",)),
    (4, "trainers", ("agenthub.trainers",)),
    (5, "apps", ("agenthub.cli", "agenthub.__main__", "agenthub.demo", "agenthub.plugin_kit",
                 "agenthub.integrations")),
]

def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if "templates" in parts or "__pycache__" in parts:
                continue  # scaffold templates are text for new plugins, not our code
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The agenthub modules `name` imports; `from pkg import sub` is an edge to `sub` only."""
    skipped: set[int] = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    targets: list[str] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                targets.append(sub if sub in modules else module)
    edges = set()
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            edges.add(target)
    return edges


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _group(module: str) -> tuple[int, str]:
    best = max(((len(prefix), rank, group) for rank, group, prefixes in LAYERS for prefix in prefixes
                if module == prefix or module.startswith(prefix + ".")), default=None)
    assert best is not None, f"{module} is in no layer: add it to LAYERS (and ARCHITECTURE.md)"
    return best[1], best[2]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _upward(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    bad = set()
    for source, targets in graph.items():
        rank, group = _group(source)
        for target in targets:
            target_rank, target_group = _group(target)
            if target_group != group and target_rank >= rank:
                bad.add((source, target))
    return bad


def test_graph_sees_known_edges():
    # The walker itself: a relative import, a lazy import and `from pkg import sub`.
    graph = _graph()
    assert "agenthub.errors" in graph["agenthub.sandbox.base"]
    assert "agenthub.sandbox.safefs" in graph["agenthub.sandbox.base"]
    assert "agenthub.sandbox" not in graph["agenthub.sandbox.base"]  # `from agenthub.sandbox import safefs`
    assert "agenthub.trainers.grpo" in graph["agenthub.cli.train"]
    assert len(graph) > 100


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_from_a_lower_layer_to_a_higher_one():
    assert _upward(_graph()) == set(), "upward imports (see ARCHITECTURE.md for what each folder may import)"


def test_upward_check_catches_core_to_trainer_and_siblings():
    graph = {"agenthub.runner": {"agenthub.trainers.policy"}, "agenthub.trainers.policy": set(),
             "agenthub.environments.x": {"agenthub.rewards.y"}, "agenthub.rewards.y": set(),
             "agenthub.rewards.z": {"agenthub.errors"}, "agenthub.errors": set()}
    assert _upward(graph) == {("agenthub.runner", "agenthub.trainers.policy"),
                              ("agenthub.environments.x", "agenthub.rewards.y")}


def _loads_torch(statement: str) -> bool:
    code = f"import sys; {statement}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().endswith("True")


def test_ground_floor_reads_in_ten_minutes():
    # Env and the message types, the bottom of every import chain, stay short.
    lines = sum(len((ROOT / "agenthub" / f).read_text().splitlines()) for f in ("env.py", "messages.py"))
    assert lines < 300


def test_light_imports_load_no_torch():
    assert not _loads_torch("import agenthub, agenthub.rewards, agenthub.runner, agenthub.agents")
