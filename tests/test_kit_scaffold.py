"""`agenthub init NAME` (issue 17, item 3): the scaffolded plugin distribution installs
with pip, registers its env and suite through its entry point, passes its own tests as
generated and passes `agenthub check`.

The distribution is pip-installed into a throwaway `--target` directory put on
PYTHONPATH (the same entry-point discovery as site-packages), not into the shared venv,
so no other test run ever sees the plugin.
"""

from __future__ import annotations

import json
import os
import py_compile
import subprocess
import sys

import pytest

from agenthub.cli import main
from agenthub.plugin_kit.scaffold import Scaffold

from conftest import run_cli


def _install(src, site) -> dict[str, str]:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(src)], check=True, capture_output=True, timeout=300)
    return {"PYTHONPATH": str(site)}


@pytest.mark.parametrize("name, family, env_id, class_name", [
    ("corridor-envs", None, "corridor/corridor-v0", "CorridorEnv"),
    ("agenthub-maze_world", "acme", "acme/acme-v0", "AcmeEnv"),
])
def test_scaffold_installs_and_passes_its_own_tests_and_the_check(tmp_path, name, family, env_id, class_name):
    args = ["init", name, "--dir", str(tmp_path)] + (["--family", family] if family else [])
    out = run_cli(*args)
    assert out.returncode == 0, out.stderr
    root = tmp_path / name
    package = name.replace("-", "_")
    for relative in ("pyproject.toml", "README.md", f"src/{package}/__init__.py", f"src/{package}/env.py",
                     f"tests/test_{package}.py"):
        assert (root / relative).is_file(), relative
    assert f"class {class_name}(agenthub.Env)" in (root / f"src/{package}/env.py").read_text()
    assert '[project.entry-points."agenthub.environments"]' in (root / "pyproject.toml").read_text()

    env = _install(root, tmp_path / "site")
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root,
                           capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    assert tests.returncode == 0 and "4 passed" in tests.stdout, tests.stdout + tests.stderr

    listed = json.loads(run_cli("list", "--json", env=env).stdout)
    assert {e["id"]: e["plugin"] for e in listed["envs"]}[env_id] == name
    assert env_id.rsplit("-v", 1)[0] in {s["name"] for s in listed["suites"]}

    check = run_cli("check", env_id, env=env)
    assert check.returncode == 0 and "all checks passed" in check.stdout, check.stdout + check.stderr
    assert check.stdout.count("PASS") == 9


def test_scaffolded_code_compiles_for_each_name_shape(tmp_path, capsys):
    for name in ("a", "x2", "my_tools", "agenthub-foo-env", "data-cleaning-envs"):
        assert main(["init", name, "--dir", str(tmp_path)]) == 0
        for path in (tmp_path / name).rglob("*.py"):
            py_compile.compile(str(path), doraise=True)
        names = Scaffold.from_name(name)
        assert names.class_name.isidentifier() and names.package.isidentifier()
    assert Scaffold.from_name("agenthub-foo-env").env_id == "foo/foo-v0"
    assert Scaffold.from_name("data-cleaning-envs").class_name == "DataCleaningEnv"


@pytest.mark.parametrize("name", ["Bad Name", "1maze", "class", "maze--x", "tests", "agenthub", "maze/x", "maze-", ""])
def test_bad_names_are_one_line(tmp_path, capsys, name):
    assert main(["init", name, "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agenthub: error: bad plugin name") and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_never_overwrites(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "pyproject.toml").write_text("keep me")
    assert main(["init", "mine", "--dir", str(tmp_path)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "mine" / "pyproject.toml").read_text() == "keep me"
