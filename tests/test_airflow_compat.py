"""What differs between the supported Airflow versions (3.1 to 3.3), checked on the installed one.

The same suite runs on Airflow 3.3 (``make pytest``) and 3.1 (``make test-compat``).
"""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

from airflow_provider_kling import version_compat


def test_version_flags_follow_the_installed_airflow():
    installed = Version(version("apache-airflow-core"))
    assert installed.release[:2] == version_compat.AIRFLOW_VERSION.release[:2]
    assert version_compat.AIRFLOW_V_3_2_PLUS == (installed.release[:2] >= (3, 2))
    assert version_compat.AIRFLOW_V_3_3_PLUS == (installed.release[:2] >= (3, 3))
    assert installed.release[:2] >= (3, 1), "the provider supports Airflow 3.1 and newer"


def test_hook_lineage_collector_is_found_on_this_airflow():
    # Storage writes report their output here; a wrong import path would silently drop lineage.
    collector = version_compat.get_hook_lineage_collector()
    assert callable(collector.add_output_asset)


@pytest.mark.dagtest
def test_a_retry_does_not_see_the_xcoms_of_its_failed_try(airflow_db):
    """Why the reattach handle is not an XCom: the next try starts with the task's XComs cleared.

    (Airflow's execution API hands the task's XCom keys to the worker at the start of a try, not
    of a resume from deferral, and the worker deletes them before ``execute``.)
    """
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from tests.airflow_compat import DagBag

    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "compat_xcom_retry.py"
    dr = DagBag(dag_folder=str(path)).get_dag("compat_xcom_retry").test()

    assert dr.state == "success"
    with create_session() as session:
        rows = session.scalars(
            XComModel.get_many(run_id=dr.run_id, dag_ids=dr.dag_id, task_ids="flaky", map_indexes=-1)
        ).all()
        xcoms = {row.key: XComModel.deserialize_value(row) for row in rows}
    assert xcoms == {"return_value": {"try_number": 2, "seen": None}}
