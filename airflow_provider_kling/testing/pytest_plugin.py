"""pytest plugin (entry point ``pytest11``): test your DAGs against the fal emulator, offline.

Loaded automatically wherever ``airflow-provider-kling`` is installed; fixtures cost nothing
until a test asks for them. Fixtures:

* ``fal_emulator`` -- a fresh :class:`~airflow_provider_kling.emulator.FalEmulator` per test with the
  ``fal_default`` connection pointed at it (``FAL_KEY`` and friends removed for the test). Knobs per
  test: ``@pytest.mark.fal_emulator(processing_time=2.0, concurrency=1)``.
* ``airflow_db`` -- ``airflow db migrate`` run once per session on the session's AIRFLOW_HOME.
* ``dagbag`` -- your DAGs folder parsed into a DagBag (the right class on Airflow 3.1 and 3.3+),
  with the ``dags-folder`` bundle pointed at it so that ``dag.test()`` finds the DAGs.
* ``airflow_home`` -- the session's AIRFLOW_HOME.

AIRFLOW_HOME: Airflow reads it once, when it is first imported, so it is settled when pytest starts.
If it is not set (and Airflow is not imported yet), the plugin makes a temporary one for the session
and deletes it afterwards; if it is set, it is used as it is. pytest's header line says which.
``kling_temporary_airflow_home = false`` in the pytest configuration keeps Airflow's default instead.
The DAGs folder is the ``kling_dags_folder`` ini option (relative to the ini file), else
``AIRFLOW__CORE__DAGS_FOLDER``, else ``dags/`` in the directory pytest was started from.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: The key the emulator connection carries (the emulator accepts any key unless told otherwise).
EMULATOR_KEY = "emulator-key-id:emulator-key-secret"
_FRESH_HOME = pytest.StashKey[Path]()
_DAGS_FOLDER = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "kling_dags_folder",
        "folder of the DAGs the `dagbag` fixture parses (relative to the ini file); "
        "default: AIRFLOW__CORE__DAGS_FOLDER, else dags/ in the directory pytest was started from",
        default=None,
    )
    parser.addini(
        "kling_temporary_airflow_home",
        "run the session in a temporary AIRFLOW_HOME when AIRFLOW_HOME is not set (default: true)",
        type="bool",
        default=True,
    )


def _dags_folder(config: pytest.Config) -> Path:
    configured = config.getini("kling_dags_folder")
    if configured:
        base = config.inipath.parent if config.inipath else config.invocation_params.dir
        return (base / str(configured)).resolve()
    if os.environ.get("AIRFLOW__CORE__DAGS_FOLDER"):
        return Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).resolve()
    return (config.invocation_params.dir / "dags").resolve()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fal_emulator(**knobs): FalEmulator arguments for the fal_emulator fixture"
    )
    dags = _dags_folder(config)
    config.stash[_DAGS_FOLDER] = dags
    if os.environ.get("AIRFLOW_HOME") or "airflow" in sys.modules:
        return  # settled already: by the caller, a conftest, or an earlier import of Airflow
    if not config.getini("kling_temporary_airflow_home"):
        return
    home = Path(tempfile.mkdtemp(prefix="kling-pytest-airflow-home-"))
    config.stash[_FRESH_HOME] = home
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    # One Fernet key for this process and every `airflow` subprocess: encrypted values stay readable.
    from cryptography.fernet import Fernet

    os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_FRESH_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    fresh = config.stash.get(_FRESH_HOME, None)
    if fresh is not None:
        where = f"{fresh} (temporary)"
    elif os.environ.get("AIRFLOW_HOME"):
        where = f"{os.environ['AIRFLOW_HOME']} (as set)"
    else:
        where = "~/airflow (Airflow's default)"
    return f"airflow-provider-kling: AIRFLOW_HOME={where}"


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """The AIRFLOW_HOME of this test session."""
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """The session's metadata DB, migrated once (``dag.test()`` needs one). Returns AIRFLOW_HOME."""
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=600,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(
            f"`airflow db migrate` failed for AIRFLOW_HOME={airflow_home} (exit {done.returncode}):\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    return airflow_home


def _dagbag_class() -> type:
    try:  # Airflow >= 3.2
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef,attr-defined]
    return DagBag


@pytest.fixture(scope="session")
def dagbag(airflow_db: Path, pytestconfig: pytest.Config) -> Iterator[Any]:
    """Your DAGs folder as a DagBag; fails listing the import errors if any DAG file is broken.

    ``dag.test()`` runs only DAGs that live in a configured bundle, so the ``dags-folder`` bundle is
    pointed at this folder for the session.
    """
    folder = pytestconfig.stash[_DAGS_FOLDER]
    if not folder.is_dir():
        raise pytest.UsageError(
            f"No DAGs folder at {folder}: set `kling_dags_folder` in your pytest configuration "
            "or AIRFLOW__CORE__DAGS_FOLDER in the environment"
        )
    name = "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"
    saved = os.environ.get(name)
    os.environ[name] = json.dumps(
        [
            {
                "name": "dags-folder",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(folder)},
            }
        ]
    )
    try:
        bag = _dagbag_class()(dag_folder=str(folder))
        if bag.import_errors:
            errors = "\n".join(f"{path}: {error}" for path, error in bag.import_errors.items())
            pytest.fail(f"DAG import errors in {folder}:\n{errors}", pytrace=False)
        yield bag
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


@pytest.fixture
def fal_emulator(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh fal emulator on loopback; the ``fal_default`` connection points at it for this test.

    Defaults are fast (``processing_time=0.3``, ``queue_delay=0``); override them with
    ``@pytest.mark.fal_emulator(**knobs)``. Counters (``submissions``, ``cancellations``,
    ``requests``) start at zero.
    """
    from airflow_provider_kling.emulator import FalEmulator

    knobs: dict[str, Any] = {"processing_time": 0.3, "queue_delay": 0.0}
    for marker in reversed(list(request.node.iter_markers("fal_emulator"))):
        knobs.update(marker.kwargs)
    for name in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with FalEmulator(**knobs) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_FAL_DEFAULT", emulator.connection_json(key=EMULATOR_KEY))
        yield emulator
