# The two commands of the README. Everything else here serves them.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch (a local wheel on the project's machines); set TORCH= for a CUDA one.
TORCH  ?= torch==2.13.0
EXTRAS ?= all

.PHONY: demo test venv system-deps clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(if $(TORCH),$(BIN)/pip install -q "$(TORCH)")
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $@

system-deps:
	bash scripts/system-deps.sh
	bash scripts/start-dockerd.sh

test: system-deps venv
	$(BIN)/python -m pytest -q -ra

demo: venv
	$(BIN)/python -m agenthub.demo --out runs/demo

clean:
	rm -rf $(VENV) runs .pytest_cache
