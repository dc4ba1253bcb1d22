# One way to set up and run ideaforge. `make test` is what CI runs: the checks, then the whole test suite.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of torch is enough to run everything here; set TORCH="torch" for your platform's default build.
TORCH ?= torch==2.13.0
IDEA ?= a red kitten in a basket

.PHONY: install test check lint typecheck layers run bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/ideaforge generate "$(IDEA)"

test: check
	$(BIN)/python -m pytest -q

check: lint layers typecheck

lint: install
	$(BIN)/ruff check .

# import-linter: layers only point down, no cycles between siblings (contracts in pyproject.toml).
layers: install
	$(BIN)/lint-imports

# mypy cannot follow setuptools' editable finder (the repository root is the package `ideaforge`), so it reads
# the package through a link named ideaforge.
typecheck: install
	mkdir -p build/typecheck && ln -sfn ../.. build/typecheck/ideaforge
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/run_all.py
