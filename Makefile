# Fulcrum: `make demo` runs a controller with sample objects; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit functional e2e services-start services-stop clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports

# Starts PostgreSQL (and later the other real services) on loopback, runs every suite, stops them.
test: $(STAMP) lint
	@./scripts/test-services.sh start
	@set -a; source .test-services/env; set +a; \
	  $(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	  ./scripts/test-services.sh stop; exit $$rc

services-start:
	./scripts/test-services.sh start
services-stop:
	./scripts/test-services.sh stop

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .test-services
