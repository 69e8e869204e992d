# bonesim developer targets. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
BONESIM := $(VENV)/bin/bonesim
DEMO   ?= demo-out
STAMP_DEV := $(VENV)/.installed-dev
STAMP_RUN := $(VENV)/.installed-run

.PHONY: help venv install demo test test-fast test-gpu gpu-check bench bench-all validate lint format clean

help:
	@echo "make demo      simulate a phantom on CPU, render it and plot its BV/TV ($(DEMO)/)"
	@echo "make test      install [dev,viz,io,morph,hpc] into $(VENV) and run pytest"
	@echo "make test-gpu  GPU tests only (needs CuPy and a CUDA device; fails without them)"
	@echo "make gpu-check the device verification script (scripts/gpu-check.sh, output in \$$OUT)"
	@echo "make bench     scripts/bench.py (JSON on stdout)"
	@echo "make validate  clinical calibration table (bonesim validate)"
	@echo "make lint      ruff"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP_DEV): $(VENV)/bin/python pyproject.toml
	$(PIP) install -q -e ".[dev,viz,io,morph,hpc]"
	@touch $@ $(STAMP_RUN)

$(STAMP_RUN): $(VENV)/bin/python pyproject.toml
	$(PIP) install -q -e .
	@touch $@

venv: $(VENV)/bin/python
install: $(STAMP_DEV)

demo: $(STAMP_RUN)
	$(PY) scripts/demo.py --out $(DEMO)

test: $(STAMP_DEV)
	$(PY) -m pytest -q

test-fast: $(STAMP_DEV)
	$(PY) -m pytest -q -m "not slow"

# fails (not skips) when CuPy or the device is missing or broken (tests/conftest.py)
test-gpu:
	BONESIM_REQUIRE_GPU=1 PYTHONPATH=. $(PYTHON) -m pytest -q -m gpu -p no:cacheprovider tests

# the prepared device run of issue 16 (docs/performance.md); writes under $$OUT
gpu-check:
	OUT=$${OUT:-gpu-check-out} PYTHON=$(PYTHON) bash scripts/gpu-check.sh

bench:
	PYTHONPATH=. $(PYTHON) scripts/bench.py

bench-all: bench
	PYTHONPATH=. $(PYTHON) scripts/bench_morphometry.py
	PYTHONPATH=. $(PYTHON) scripts/bench_batch.py
	PYTHONPATH=. $(PYTHON) scripts/bench_render.py

validate: $(STAMP_RUN)
	$(BONESIM) validate

lint: $(STAMP_DEV)
	$(VENV)/bin/ruff check bonesim tests scripts
	$(VENV)/bin/ruff format --check bonesim tests scripts

format: $(STAMP_DEV)
	$(VENV)/bin/ruff check --fix bonesim tests scripts
	$(VENV)/bin/ruff format bonesim tests scripts

clean:
	rm -rf build dist *.egg-info $(DEMO) .pytest_cache
