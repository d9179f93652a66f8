# The two commands: `make run` serves the app, `make test` runs the suite.
# `make dev` serves it with Django's autoreloading development server instead of gunicorn.
HOST ?= 127.0.0.1
PORT ?= 8000
PY ?= $(shell for p in python3.13 python3.12 python3.11 python3 python; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run dev test install bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PY)" || { echo "Python 3.11 or newer is required (set PY=/path/to/python3.11)."; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	HOST=$(HOST) PORT=$(PORT) bin/run

dev: install
	HOST=$(HOST) PORT=$(PORT) bin/run --dev

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Every benchmark (bench/run_all.py), one after the other, then one table; under 10 minutes.
bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var
