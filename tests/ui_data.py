"""Many Kling task instances, fast: copy the rows of one real run (DagRun, task instances, XComs,
rendered fields) under new run ids and DAG ids. Used by tests/test_ui_plugin.py and
benchmarks/ui_gallery.py to put 1,000+ Kling tasks in the metadata DB without running them.

Rows are copied column by column from what Airflow itself wrote, so the copies match the schema of
whichever Airflow version is installed (3.1 and 3.3 differ).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert, select


def _uuid7() -> uuid.UUID:
    try:
        from uuid6 import uuid7  # what Airflow uses for task instance ids

        return uuid7()
    except ImportError:  # pragma: no cover
        return uuid.uuid4()


def _new_id(like: Any) -> Any:
    """A fresh task-instance id of the same type as ``like`` (Airflow 3.1 reads it back as hex text)."""
    new = _uuid7()
    if isinstance(like, str):
        return str(new) if "-" in like else new.hex
    return new


def clone_runs(
    source_dag_id: str,
    source_run_id: str,
    *,
    runs: int,
    dag_ids: list[str],
    days: int = 30,
    end: datetime | None = None,
    ti_overrides: dict[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """Copy one run ``runs`` times, round-robin over ``dag_ids``, submission times spread over
    ``days`` before ``end``. Returns the ``(dag_id, run_id)`` of every copy."""
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    end = end or datetime.now(timezone.utc)
    made: list[tuple[str, str]] = []
    with create_session() as session:
        dag_row = (
            session.execute(select(DagModel.__table__).where(DagModel.__table__.c.dag_id == source_dag_id))
            .mappings()
            .first()
        )
        existing = set(session.scalars(select(DagModel.dag_id).where(DagModel.dag_id.in_(dag_ids))))
        for dag_id in dag_ids:
            if dag_id not in existing and dag_row is not None:
                session.execute(insert(DagModel.__table__).values({**dag_row, "dag_id": dag_id}))
        run_table = DagRun.__table__
        run_row = dict(
            session.execute(
                select(run_table).where(
                    run_table.c.dag_id == source_dag_id, run_table.c.run_id == source_run_id
                )
            )
            .mappings()
            .one()
        )
        source_run_pk = run_row.pop("id")
        ti_table = TaskInstance.__table__
        tis = [
            dict(r)
            for r in session.execute(
                select(ti_table).where(ti_table.c.dag_id == source_dag_id, ti_table.c.run_id == source_run_id)
            ).mappings()
        ]
        xcom_table = XComModel.__table__
        xcoms = [
            dict(r)
            for r in session.execute(
                select(xcom_table).where(xcom_table.c.dag_run_id == source_run_pk)
            ).mappings()
        ]
        rtif_table = RenderedTaskInstanceFields.__table__
        rtifs = [
            dict(r)
            for r in session.execute(
                select(rtif_table).where(
                    rtif_table.c.dag_id == source_dag_id, rtif_table.c.run_id == source_run_id
                )
            ).mappings()
        ]
        step = timedelta(days=days) / max(runs, 1)
        for index in range(runs):
            dag_id = dag_ids[index % len(dag_ids)]
            run_id = f"bulk__{uuid.uuid4().hex[:12]}_{index}"
            when = end - step * index
            new_run = {**run_row, "dag_id": dag_id, "run_id": run_id}
            for column in ("logical_date", "run_after", "queued_at", "start_date", "end_date"):
                if column in new_run and new_run[column] is not None:
                    new_run[column] = when
            run_pk = session.execute(insert(run_table).values(new_run)).inserted_primary_key[0]
            session.execute(
                insert(ti_table),
                [
                    {
                        **ti,
                        "id": _new_id(ti["id"]),
                        "dag_id": dag_id,
                        "run_id": run_id,
                        **(ti_overrides or {}),
                    }
                    for ti in tis
                ],
            )
            if xcoms:
                session.execute(
                    insert(xcom_table),
                    [
                        {**x, "dag_run_id": run_pk, "dag_id": dag_id, "run_id": run_id, "timestamp": when}
                        for x in xcoms
                    ],
                )
            if rtifs:
                session.execute(
                    insert(rtif_table), [{**r, "dag_id": dag_id, "run_id": run_id} for r in rtifs]
                )
            made.append((dag_id, run_id))
    return made
