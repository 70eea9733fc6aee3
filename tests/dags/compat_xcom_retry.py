"""Test DAG (driven by tests/test_airflow_compat.py): does a retry still see its failed try's XComs?

Try 1 pushes an XCom and fails; try 2 reports what it can read back. The answer decides where the
Kling operators keep the fal request handle between tries (see lifecycle/reattach.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

with DAG(dag_id="compat_xcom_retry", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):

    @task(retries=1, retry_delay=timedelta(seconds=0), multiple_outputs=False)
    def flaky(ti: Any = None) -> dict[str, Any]:
        seen = ti.xcom_pull(task_ids=ti.task_id, key="left_by_try_1")
        if ti.try_number == 1:
            ti.xcom_push(key="left_by_try_1", value="handle")
            raise RuntimeError("try 1 fails on purpose")
        return {"try_number": ti.try_number, "seen": seen}

    flaky()
