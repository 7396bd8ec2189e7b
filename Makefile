# tierstream — the two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Strict editable install: `tierstream` is a link tree of streams/ and schemas/, so
# mypy and the interpreter see the same package. New files need a re-sync, which
# every target below does when the set of sources changed.
SOURCES_LIST := $(VENV)/.sources

.PHONY: install sync test unit integration lint schemas demo stack bench clean

install: $(VENV)/.installed sync

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing tierstream and its tools into $(VENV)/ (1-2 minutes, ~600 MB; log: $(VENV)/install.log)"
	@set -o pipefail; $(BIN)/python -m pip install -q --upgrade pip "setuptools>=68" wheel > $(VENV)/install.log 2>&1 \
	  && $(BIN)/python -m pip install --progress-bar off -e '.[dev]' --config-settings editable_mode=strict 2>&1 \
	     | tee -a $(VENV)/install.log | while IFS= read -r line; do case "$$line" in \
	         Collecting*|Installing\ collected*|Successfully\ installed*) echo "  $${line:0:100}";; esac; done \
	  || { tail -30 $(VENV)/install.log; exit 1; }
	@find streams schemas -type f \( -name "*.py" -o -name "*.yaml" -o -name "*.json" -o -name py.typed \) | sort > $(SOURCES_LIST)
	@touch $@

sync: $(VENV)/.installed
	@find streams schemas -type f \( -name "*.py" -o -name "*.yaml" -o -name "*.json" -o -name py.typed \) | sort > $(SOURCES_LIST).new; \
	if ! cmp -s $(SOURCES_LIST).new $(SOURCES_LIST); then \
	  echo "re-linking the package tree (sources added or removed)"; \
	  $(BIN)/python -m pip install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=strict >/dev/null 2>&1 \
	  && mv $(SOURCES_LIST).new $(SOURCES_LIST); \
	else rm -f $(SOURCES_LIST).new; fi

test: install
	$(BIN)/python -m pytest -q tests

unit: install
	$(BIN)/python -m pytest -q tests/unit

integration: install
	$(BIN)/python -m pytest -q tests/integration

lint: install
	$(BIN)/ruff check streams schemas tests bench
	$(BIN)/ruff format --check streams schemas tests bench
	$(BIN)/mypy -p tierstream
	$(BIN)/mypy --explicit-package-bases bench

schemas: install
	$(BIN)/python -m tierstream.schemas.export

demo: install
	$(BIN)/python -m tierstream.demo $(ARGS)

# A broker and redis-server for replay/capture/run outside the demo, until Ctrl-C.
stack: install
	$(BIN)/python -m tierstream.devstack $(ARGS)

# make bench ARGS=--quick: a 2-minute smoke run; ARGS=--skip-worker: the engine only.
bench: install
	$(BIN)/python -m bench.run $(ARGS)

clean:
	rm -rf build .mypy_cache .pytest_cache .ruff_cache
