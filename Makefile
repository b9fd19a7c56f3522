# Quick start: `make run` (demo on an embedded workspace) and `make test` (the whole suite).
# Both create .venv themselves on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.maestro-installed
# Strict editable mode builds a link tree under build/ that mypy and pytest both read;
# re-linking is cheap and picks up newly added modules.
EDITABLE := --no-build-isolation --config-settings editable_mode=strict

.PHONY: run test lint typecheck unit bench relink clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools>=77" wheel
	$(BIN)/pip install -q $(EDITABLE) -e '.[dev]'
	touch $@

relink: $(STAMP)
	$(BIN)/pip install -q --no-deps $(EDITABLE) -e .

run: relink
	$(BIN)/maestro demo

lint: relink
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd build/__editable__.*/ && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p maestro

unit: relink
	$(BIN)/pytest -q

test: lint unit

bench: relink
	$(BIN)/pip install -q -e '.[bench]' $(EDITABLE)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
