# robustbench_cli: `make install` once, then `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

.PHONY: install test test-all lint bench clean

install:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps torchattacks==3.5.1  # see pyproject's dev extra

test:
	$(PY) -m pytest -q

test-all:
	$(PY) -m pytest -q -m ''

lint:
	$(PY) -m ruff check robustbench_cli tests

bench:
	$(PY) tests/bench_attacks.py
	$(PY) tests/bench_reliable.py
	$(PY) tests/bench_fit.py
	$(PY) tests/bench_sweep.py
	$(PY) tests/bench_scale.py

clean:
	rm -rf outputs multirun bench_out build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
