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
# The lowest versions pyproject.toml allows (uv's lowest-direct resolution; Airflow itself at 3.1.8 with
# its constraints, see .ci/lowest_versions.py), in a venv of its own.
LOWEST_VENV := .venv-lowest
LOWEST_PY := $(LOWEST_VENV)/bin/python
LOWEST_STAMP := $(LOWEST_VENV)/.installed
# The tests that drive our direct dependencies (httpx, h11, tenacity, pydantic, Pillow, PyAV, numpy,
# starlette, uvicorn) themselves. The dag.test() and e2e tests add Airflow runs, and Airflow is the same
# 3.1.8 that test-compat already covers; the whole non-e2e suite here costs 5+ min against about 1.5.
LOWEST_TESTS := tests/test_emulator_faults.py tests/test_emulator_output.py tests/test_emulator_queue.py \
	tests/test_emulator_server.py tests/test_emulator_storage.py tests/test_hook.py tests/test_hook_async.py \
	tests/test_hook_edge.py tests/test_hook_upload.py tests/test_protocol.py tests/test_protocol_retry.py \
	tests/test_models.py tests/test_file_inputs.py tests/test_validation_bad_inputs.py tests/test_storage.py \
	tests/test_trigger_kling.py tests/test_operator_kling.py tests/test_credentials.py tests/test_provider_info.py

# pytest-xdist: most tests wait (on the emulator, Airflow subprocesses, timers) rather than compute, so
# three worker processes keep two cores busy. Each test module is one unit of work and all of tests/e2e
# one more (see tests/conftest.py). `make pytest PYTEST_WORKERS=0` runs in a single process.
PYTEST_WORKERS ?= 3
XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

.PHONY: venv test lint typecheck pytest test-compat test-lowest demo emulator bench clean

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

$(LOWEST_STAMP): pyproject.toml $(COMPAT_CONSTRAINTS) .ci/lowest_versions.py $(STAMP)
	test -x $(LOWEST_PY) || $(PYTHON) -m venv $(LOWEST_VENV)
	$(PY) .ci/lowest_versions.py $(LOWEST_VENV)
	$(UV) pip install -q -p $(LOWEST_PY) --compile-bytecode -r $(LOWEST_VENV)/lowest.txt
	$(UV) pip install -q -p $(LOWEST_PY) --no-deps -e .
	touch $(LOWEST_STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check airflow_provider_kling tests example_dags benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider -q $(XDIST) $(PYTEST_ARGS)

# Unit + dag.test() tests on Airflow 3.1 (tests/e2e boots real 3.3 components and stays 3.3-only).
# tests/test_packaging.py checks the built sdist/wheel, which do not depend on the Airflow version: once is enough.
test-compat: $(COMPAT_STAMP)
	$(COMPAT_PY) -m pytest -p no:cacheprovider -q $(XDIST) --ignore=tests/e2e --ignore=tests/test_packaging.py $(PYTEST_ARGS)

# Lowest versions of every direct dependency (see LOWEST_TESTS for why a subset).
test-lowest: $(LOWEST_STAMP)
	$(LOWEST_PY) -m pytest -p no:cacheprovider -q $(XDIST) $(LOWEST_TESTS) $(PYTEST_ARGS)

# The three venvs install side by side and next to ruff and mypy (uv waits mostly on the network and the
# disk); the test runs then go one after another, each spread over PYTEST_WORKERS processes.
test:
	$(MAKE) -j3 lint typecheck $(COMPAT_STAMP) $(LOWEST_STAMP)
	$(MAKE) pytest test-compat test-lowest

demo: $(STAMP)
	$(PY) -m airflow_provider_kling.demo

emulator: $(STAMP)
	$(PY) -m airflow_provider_kling.emulator --port 8765

bench: $(STAMP)
	$(PY) benchmarks/emulator_throughput.py

clean:
	rm -rf $(VENV) $(COMPAT_VENV) $(LOWEST_VENV) out .airflow-home test-artifacts
