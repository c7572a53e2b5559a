# Train — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo serve test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: start the local service, run examples/hello to COMPLETED, print its logs and checkpoints, stop
demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash examples/demo.sh

## serve: the HTTP API on 127.0.0.1:8080 with SQLite and the local backend (TRAIN_DATA_DIR or ~/.train)
serve: install
	$(VENV)/bin/train serve

## test: install everything, lint, type-check core/ and run the whole suite
test: install
	$(VENV)/bin/ruff check core functions tests bench examples
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -p no:cacheprovider

## lint: ruff and mypy on core/
lint: install
	$(VENV)/bin/ruff check core functions tests bench examples
	$(VENV)/bin/mypy

## bench: benchmarks that print ratios measured side by side in one run
bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) .train-demo .pytest_cache .mypy_cache .ruff_cache .hypothesis
