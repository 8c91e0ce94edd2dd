# The two commands a fresh machine needs:
#   make demo   set everything up, start the local task hub, open JupyterLab on the notebooks
#   make test   set everything up and run the whole test suite
# Everything is installed inside this folder (.venv, node_modules), except Debian's chromium,
# which the browser test drives (installed with apt-get when run as root).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
JUPYTER_PORT ?= 8888
# Jupyter refuses to start as root (containers, CI machines) unless told it may.
JUPYTER_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
JUPYTER_ARGS ?=

.PHONY: setup demo lab test up down status lint format stubs bench clean browser

setup: $(VENV)/.installed node_modules/.installed stubs

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"' \
		|| { echo "Python 3.11 or newer is needed (set PYTHON=python3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) \
		|| { echo "Could not create a venv: on Debian run 'apt-get install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[notebooks,dev]'
	@touch $@

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js 20 (Debian: apt-get install nodejs npm)"; exit 1; }
	npm ci --no-audit --no-fund
	@touch $@

stubs: $(VENV)/.installed
	@$(BIN)/python -m durable_helpers.stubs --quiet

browser:
	@command -v chromium >/dev/null || test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "The browser test needs Debian's chromium: sudo apt-get install chromium"; \
		fi; }

up: setup
	$(BIN)/python -m durable_helpers.local up

down:
	@test -x $(BIN)/python && $(BIN)/python -m durable_helpers.local down || true

status:
	$(BIN)/python -m durable_helpers.local status

demo: up lab

lab: setup
	$(BIN)/jupyter lab --ip 127.0.0.1 --port $(JUPYTER_PORT) --notebook-dir notebooks $(JUPYTER_ROOT) $(JUPYTER_ARGS)

test: setup browser
	$(BIN)/python -m pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean: down
	rm -rf $(VENV) node_modules .local-taskhub .pytest_cache .ruff_cache
