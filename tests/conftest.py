"""Test-session set-up shared by every test.

Airflow reads AIRFLOW_HOME at import time, so it is pinned here before anything imports airflow:
a fresh home per session, never ~/airflow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
_HOME = Path(tempfile.mkdtemp(prefix="kling-airflow-home-"))
DAGS_FOLDER = _HOME / "dags"
DAGS_FOLDER.mkdir()

os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = "kling-tests-" + "x" * 64
# One Fernet key for this process and every Airflow subprocess it starts: otherwise the first
# import writes airflow.cfg with a key this process never reads, and encrypted values (Variables,
# connections) can't be shared across processes.
os.environ["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()
# OpenLineage (a test dependency) stays off except in the lineage test, which enables it in a
# process of its own: its listener would otherwise fork on every task event of every dag.test().
os.environ["AIRFLOW__OPENLINEAGE__DISABLED"] = "True"
# A key must exist in the environment of nobody: tests set connections explicitly.
for _var in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET"):
    os.environ.pop(_var, None)

# dag.test() serialises DAGs through the dags-folder bundle, so test DAGs and example DAGs
# are copied into the session's dags folder.
for _src in (ROOT / "tests" / "dags", ROOT / "example_dags"):
    if _src.is_dir():
        for _f in _src.iterdir():
            if _f.is_file() and _f.suffix in {".py", ".csv", ".json", ".png"}:
                shutil.copy(_f, DAGS_FOLDER / _f.name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    return _HOME


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """A migrated SQLite metadata DB, made once per session (dag.test() needs one)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
        timeout=300,
    )
    return airflow_home


@pytest.fixture
def emulator() -> Iterator:
    """A fresh fal emulator on loopback with fast timings; counters start at zero."""
    from airflow_provider_kling.emulator import FalEmulator

    with FalEmulator(processing_time=0.3, queue_delay=0.0) as emu:
        yield emu


@pytest.fixture
def fal_conn(emulator, monkeypatch) -> str:
    """Point the default ``fal`` connection at the emulator (env-var connection, no DB)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_FAL_DEFAULT", emulator.connection_json(key="test-key-id:test-key-secret")
    )
    return "fal_default"
