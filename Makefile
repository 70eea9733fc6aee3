# Two commands matter: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
CONSTRAINTS := constraints/airflow-3.3.2-py3.11.txt
STAMP := $(VENV)/.installed

.PHONY: venv test lint typecheck pytest demo emulator bench clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q uv
	$(UV) pip install -q -p $(PY) --compile-bytecode -c $(CONSTRAINTS) -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check airflow_provider_kling tests example_dags benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider -q $(PYTEST_ARGS)

test: lint typecheck pytest

demo: $(STAMP)
	$(PY) -m airflow_provider_kling.demo

emulator: $(STAMP)
	$(PY) -m airflow_provider_kling.emulator --port 8765

bench: $(STAMP)
	$(PY) benchmarks/emulator_throughput.py

clean:
	rm -rf $(VENV) out .airflow-home test-artifacts
