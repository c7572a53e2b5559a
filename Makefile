# Train — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

NODE_STAMP := node_modules/.package-lock.copy

.PHONY: install apt-deps demo serve test lint bench iac-aws iac-azure iac-gcp clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Pinned npm tools (Serverless Framework v3, the Firestore emulator), exactly as package-lock.json says.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	cp package-lock.json $(NODE_STAMP)

## demo: start the local service, run examples/hello to COMPLETED, print its logs and checkpoints, stop
demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash examples/demo.sh

## serve: the HTTP API on 127.0.0.1:8080 with SQLite and the local backend (TRAIN_DATA_DIR or ~/.train)
serve: install
	$(VENV)/bin/train serve

## apt-deps: Debian's OCI registry and skopeo for the workspace-registry tests (in CI, or when missing)
apt-deps:
	@if [ "$$CI" = "true" ] || ! command -v docker-registry >/dev/null || ! command -v skopeo >/dev/null; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-registry skopeo; \
	fi

## test: install everything, lint, type-check core/, check the AWS template, run the whole suite
test: install apt-deps $(NODE_STAMP)
	$(VENV)/bin/ruff check core functions tests bench examples
	$(VENV)/bin/mypy
	$(MAKE) --no-print-directory iac-aws iac-azure iac-gcp
	$(PY) -m pytest -q -p no:cacheprovider

## iac-aws: serverless package, then cfn-lint and checkov on the generated CloudFormation template
iac-aws: install $(NODE_STAMP)
	bash infra/check_aws.sh

## iac-gcp: parse infra/gcp (python-hcl2), check its structure, run checkov on it
iac-gcp: install
	bash infra/check_gcp.sh

## iac-azure: checkov and a structural check on infra/azure
iac-azure: install
	bash infra/check_azure.sh

## lint: ruff and mypy on core/
lint: install
	$(VENV)/bin/ruff check core functions tests bench examples
	$(VENV)/bin/mypy

## bench: benchmarks that print ratios measured side by side in one run
bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) node_modules build .serverless .train-demo .pytest_cache .mypy_cache .ruff_cache .hypothesis
