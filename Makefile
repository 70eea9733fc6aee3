# Two commands matter: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
CONSTRAINTS := constraints/airflow-3.3.2-py3.11.txt
STAMP := $(VENV)/.installed
# The oldest supported Airflow gets the non-e2e tests again, in a venv of its own.
COMPAT_VENV := .venv-af31
COMPAT_PY := $(COMPAT_VENV)/bin/python
COMPAT_CONSTRAINTS := constraints/airflow-3.1.8-py3.11.txt
COMPAT_STAMP := $(COMPAT_VENV)/.installed

.PHONY: venv test lint typecheck pytest test-compat demo emulator bench clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q uv
	$(UV) pip install -q -p $(PY) --compile-bytecode -c $(CONSTRAINTS) -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

$(COMPAT_STAMP): pyproject.toml $(COMPAT_CONSTRAINTS)
	test -x $(COMPAT_PY) || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install -q uv
	$(COMPAT_VENV)/bin/uv pip install -q -p $(COMPAT_PY) --compile-bytecode -c $(COMPAT_CONSTRAINTS) -e ".[test]"
	touch $(COMPAT_STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check airflow_provider_kling tests example_dags benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider -q $(PYTEST_ARGS)

# Unit + dag.test() tests on Airflow 3.1 (tests/e2e boots real 3.3 components and stays 3.3-only).
test-compat: $(COMPAT_STAMP)
	$(COMPAT_PY) -m pytest -p no:cacheprovider -q --ignore=tests/e2e $(PYTEST_ARGS)

test: lint typecheck pytest test-compat

demo: $(STAMP)
	$(PY) -m airflow_provider_kling.demo

emulator: $(STAMP)
	$(PY) -m airflow_provider_kling.emulator --port 8765

bench: $(STAMP)
	$(PY) benchmarks/emulator_throughput.py

clean:
	rm -rf $(VENV) $(COMPAT_VENV) out .airflow-home test-artifacts
