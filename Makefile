# One way to set up and run ideaforge. `make test` is what CI runs.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of torch is enough to run everything here; set TORCH="torch" for your platform's default build.
TORCH ?= torch==2.13.0
IDEA ?= a red kitten in a basket

.PHONY: install test run lint bench

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

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/run_all.py
