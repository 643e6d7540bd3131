# Every target bootstraps its own virtualenv: nothing needs installing by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow test-browser lint bench torture schemas docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) demo/session.py

test: $(STAMP)
	$(PY) -m pytest -n 2

test-slow: $(STAMP)
	$(PY) -m pytest -m 'slow'

test-browser: $(STAMP)
	$(PY) -m pytest -m 'browser'

lint: $(STAMP)
	$(VENV)/bin/ruff check beadsmail tests bench demo

bench: $(STAMP)
	$(PY) -m bench

torture: $(STAMP)
	$(PY) -m pytest -m 'torture'

schemas: $(STAMP)
	$(PY) -m beadsmail.schemas.generate

docs: $(STAMP)
	$(PY) -m beadsmail.cli.reference > docs/cli.md

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
