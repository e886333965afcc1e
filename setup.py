"""Maps the top-level folders onto one import root, so installing agenthub never puts
generic names such as `sandbox` into site-packages (see DESIGN.md, repository layout)."""
from setuptools import find_packages, setup

FOLDERS = {
    "agenthub": "agenthub",
    "agenthub.environments": "environments",
    "agenthub.rewards": "rewards",
    "agenthub.trainers": "trainers",
    "agenthub.sandbox": "sandbox",
}

packages = []
for package, folder in FOLDERS.items():
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(
    packages=packages,
    package_dir=FOLDERS,
    package_data={"": ["*.json", "*.yaml", "*.txt", "*.md", "*.html", "*.pddl", "*.j2", "templates/*.j2", "Dockerfile*"]},
    include_package_data=True,
)
