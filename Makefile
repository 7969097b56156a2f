# Two commands for a new user (each creates .venv/ first when it is missing):
#   make run    the default workflow on the embedded real data (snakemake --cores 2)
#   make test   lint + the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: run test lint clean-results

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check Snakefile rules/
	$(BIN)/snakemake --lint --workflow-profile none

test: lint
	$(BIN)/python -m pytest

clean-results:
	rm -rf results results-smoke
