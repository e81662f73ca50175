# connect-bridge: the two commands are `make demo` and `make test`.
# Each installs what it needs (a virtualenv in .venv, the pinned Streams
# library from npm, and for the tests Debian's chromium) before it runs.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PORT ?= 8765

.PHONY: demo test install tools lint bench clean

demo: install
	$(BIN)/connect-bridge demo --port $(PORT)

test: install tools
	$(BIN)/mypy bridge
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest
	npm test

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The Streams page loads the real amazon-connect-streams bundle, pinned in package-lock.json.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

tools:
	scripts/ensure-tools

lint: install
	$(BIN)/mypy bridge
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m ruff check bridge tests benchmarks

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) node_modules artifacts .pytest_cache
