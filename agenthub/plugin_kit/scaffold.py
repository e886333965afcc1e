"""`agenthub init NAME`: a plugin distribution that passes its own tests as generated.

The files come from the Jinja templates beside this module; `Scaffold` holds the names
they are rendered with, all derived from NAME:

    NAME            corridor-envs         the distribution (PyPI) name
    package         corridor_envs         the import package, under src/
    family          corridor              the env id's family (NAME less a trailing
                                          "-envs"/"-env" and a leading "agenthub-")
    env_id          corridor/corridor-v0
    suite           corridor/corridor
    class_name      CorridorEnv
"""

from __future__ import annotations

import keyword
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import jinja2

from agenthub import __version__
from agenthub.errors import AgentHubError

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
_TEMPLATES = Path(__file__).with_name("templates")


@dataclass(frozen=True)
class Scaffold:
    dist: str
    package: str
    family: str
    env_id: str
    suite: str
    class_name: str
    agenthub_version: str = __version__

    @classmethod
    def from_name(cls, name: str, family: str | None = None) -> Scaffold:
        """The names for distribution `name`; AgentHubError saying what is wrong with a
        name that cannot be one (or that would shadow a module the plugin imports)."""
        if not _NAME.match(name):
            raise AgentHubError(f"bad plugin name {name!r}: use lowercase letters, digits and single '-' or '_' "
                                "between them, starting with a letter (e.g. 'corridor-envs')")
        package = name.replace("-", "_")
        if keyword.iskeyword(package) or package in ("agenthub", "gymnasium", "tests", "test"):
            raise AgentHubError(f"bad plugin name {name!r}: its package {package!r} would shadow a module "
                                "of that name; choose another")
        family = family or re.sub(r"(?:[-_]envs?)$", "", re.sub(r"^agenthub[-_]", "", name)) or name
        if not _NAME.match(family):
            raise AgentHubError(f"bad family {family!r}: use lowercase letters, digits, '-' and '_'")
        class_name = "".join(part.capitalize() for part in re.split(r"[-_]", family)) + "Env"
        return cls(name, package, family, f"{family}/{family}-v0", f"{family}/{family}", class_name)


# template -> path in the distribution; {package} is filled in
FILES = {
    "pyproject.toml.j2": "pyproject.toml",
    "README.md.j2": "README.md",
    "init.py.j2": "src/{package}/__init__.py",
    "env.py.j2": "src/{package}/env.py",
    "test_env.py.j2": "tests/test_{package}.py",
}


def scaffold(name: str, parent: str | Path = ".", family: str | None = None) -> tuple[Scaffold, list[Path]]:
    """Write the distribution `name` into `parent/name`; returns its names and the files
    written. AgentHubError for a bad name or a target that exists and is not empty
    (nothing is overwritten)."""
    names = Scaffold.from_name(name, family)
    root = Path(parent) / name
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise AgentHubError(f"{root} already exists and is not empty: choose another name or directory")
    templates = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), undefined=jinja2.StrictUndefined,
                                   keep_trailing_newline=True, autoescape=False)
    written = []
    for template, relative in FILES.items():
        path = root / relative.format(package=names.package)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(templates.get_template(template).render(asdict(names)), encoding="utf-8")
        written.append(path)
    return names, written
