# Two entry points (see README): `make demo` runs ALTO's main job, `make test` runs
# every test. Both create .venv and install what they need on first use (idempotent:
# the install re-runs only when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench install clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ALTO needs Python >= 3.11: install python3.11 (apt-get install python3.11 python3.11-venv) or run make PYTHON=python3.11")'
	@$(PYTHON) -m venv $(VENV) || { echo "python venv is missing: apt-get install python3-venv"; exit 1; }
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/streaming_demo.py

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(STAMP)
	$(PY) benchmarks/overhead.py --out docs/overhead.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
