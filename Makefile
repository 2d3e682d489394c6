# Two commands for a new machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# the AsyncAPI CLI (npm) validates schemas/json/asyncapi.json in the tests; 4.1.1 is the last
# release that runs on Node 18/20 (Debian's and this machine's)
ASYNCAPI_CLI_VERSION := 4.1.1
TOOLS_DIR := .tools

.PHONY: install tools demo test lint bench soak clean

install: $(STAMP)

# Debian tools the tests use: promtool/amtool (Prometheus rule tests, a real scrape), headless
# Chromium with a CJK font (the HTML report screenshot), Node.js for the AsyncAPI CLI, which goes
# into $(TOOLS_DIR) (git-ignored) at a pinned version
tools:
	@if ! command -v promtool >/dev/null 2>&1 || ! command -v amtool >/dev/null 2>&1 \
			|| ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi wenquanyi; then \
		echo "installing Debian's prometheus, prometheus-alertmanager, chromium, fonts-wqy-microhei"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
			prometheus prometheus-alertmanager chromium fonts-wqy-microhei fontconfig >/dev/null; \
	fi
	@if ! command -v npm >/dev/null 2>&1; then \
		echo "installing Debian's nodejs and npm"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; \
	fi
	@if ! $(TOOLS_DIR)/node_modules/.bin/asyncapi --version 2>/dev/null | grep -q "cli/$(ASYNCAPI_CLI_VERSION) "; then \
		echo "installing @asyncapi/cli $(ASYNCAPI_CLI_VERSION) into $(TOOLS_DIR)"; \
		npm install --prefix $(TOOLS_DIR) --save-exact --no-audit --no-fund --loglevel=error \
			@asyncapi/cli@$(ASYNCAPI_CLI_VERSION) >/dev/null; \
	fi

# setup.py compiles the worker's pure modules (mypyc): an edit of one installs them again (until
# then the sources run: streams/native.py)
COMPILED_SOURCES := $(foreach m,calendar cases processor sla snapshots steps,streams/$(m).py)

$(STAMP): pyproject.toml setup.py $(COMPILED_SOURCES)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: install
	$(VENV)/bin/civicflow demo

test: install tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -n 2 --dist loadfile

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: install
	$(PY) -m bench

# the live pipeline under load and faults (bench/soak.py): SOAK_MINUTES (default 30), SOAK_RATE
# (events/s, default 300), SOAK_DIR (default a new temporary directory); exits 1 on a loss or
# on RSS growing while the case count is flat
soak: install
	$(PY) -m pytest -q -m soak
	$(PY) -m bench.soak

clean:
	rm -rf var .pytest_cache
