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
from typing import Any

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
# The triggerer's gc.freeze() (hooks/_gc_freeze.py) acts on the whole process: in the test process it
# would freeze pytest's own objects. tests/test_gc_freeze.py turns it on where it is tested.
os.environ["AIRFLOW__KLING__TRIGGERER_GC_FREEZE"] = "False"
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


# Parallel runs (`make pytest` passes `-n 3 --dist loadfile`, pytest-xdist): each worker process imports
# this file, so each has its own AIRFLOW_HOME, metadata DB and emulators. A test module is one unit of
# work, run in file order on one worker, so module-scoped fixtures are made once and tests that share
# them in order keep working. All of tests/e2e is a single unit: each module boots a whole Airflow stack
# (several processes), and two stacks at once on two cores starve each other's heartbeats.
E2E_DIR = ROOT / "tests" / "e2e"


def _work_unit(path: Path) -> str:
    return "e2e" if E2E_DIR in path.parents else path.relative_to(ROOT).as_posix()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadfile":
        return None  # any other --dist mode as pytest-xdist has it
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        """--dist loadfile, except that every tests/e2e module goes into one unit."""

        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(ROOT / nodeid.split("::", 1)[0])

    # Units go out in collection order (see pytest_collection_modifyitems), not by their test count.
    config.option.loadscopereorder = False
    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return  # a plain run keeps pytest's order
    # In a worker, the longest units first: the e2e stacks, then the modules that run DAGs. A unit keeps
    # its place as a whole and the sort is stable, so file order within a unit is kept. Every worker
    # sorts the same way (xdist checks that the workers' collections agree).
    rank: dict[str, int] = {}
    for item in items:
        unit = _work_unit(item.path)
        weight = 0 if unit == "e2e" else 1 if item.get_closest_marker("dagtest") else 2
        rank[unit] = min(weight, rank.get(unit, weight))
    items.sort(key=lambda item: rank[_work_unit(item.path)])


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
