"""Metadata-DB reads behind the pages: a handful of indexed queries per page, whatever the row count.

The gallery reads one row per submitted fal request (XCom ``request_id``, indexed by key) joined
with its task instance and return value, groups and pages them in Python, then loads details only
for the page shown. Nothing here loops over tasks issuing a query each.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, aliased

from airflow_provider_kling.plugins.ui import values
from airflow_provider_kling.plugins.ui.records import (
    DETAIL_KEYS,
    KEY_REQUEST_ID,
    KEY_RETURN,
    RUNNING_STATES,
    STORAGE_OPERATORS,
    TaskKey,
    VideoRecord,
    prompt_from_rendered,
)

PAGE_SIZE = 24
STATUSES = ("success", "failed", "running")


def _models() -> tuple[Any, Any, Any]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel

    return TaskInstance, XComModel, RenderedTaskInstanceFields


def _same_task_instance(ti: Any, other: Any) -> Any:
    """Join condition: ``other``'s row belongs to task instance ``ti`` (XCom and TI share the key)."""
    return and_(
        ti.dag_id == other.dag_id,
        ti.run_id == other.run_id,
        ti.task_id == other.task_id,
        ti.map_index == other.map_index,
    )


def status_group(state: str | None) -> str:
    if state == "success":
        return "success"
    if state in ("failed", "upstream_failed"):
        return "failed"
    if state in RUNNING_STATES:
        return "running"
    return state or "none"


# -- one task instance (the Video tab) -----------------------------------------------------------


def load_video(session: Session, key: TaskKey) -> VideoRecord | None:
    """The record of one task instance, or None when no such task instance exists."""
    TI, _, _ = _models()
    ti = session.execute(
        select(TI.state, TI.operator, TI.try_number, TI.queued_dttm, TI.start_date, TI.end_date).where(
            TI.dag_id == key.dag_id,
            TI.run_id == key.run_id,
            TI.task_id == key.task_id,
            TI.map_index == key.map_index,
        )
    ).first()
    if ti is None:
        return None
    record = VideoRecord(
        key=key,
        state=ti.state,
        operator=ti.operator,
        try_number=ti.try_number,
        queued_at=ti.queued_dttm,
        started_at=ti.start_date,
        ended_at=ti.end_date,
    )
    _fill(session, [record])
    return record


def mapped_indexes(session: Session, dag_id: str, run_id: str, task_id: str) -> list[int]:
    TI, _, _ = _models()
    rows = session.scalars(
        select(TI.map_index)
        .where(TI.dag_id == dag_id, TI.run_id == run_id, TI.task_id == task_id, TI.map_index >= 0)
        .order_by(TI.map_index)
    )
    return list(rows)


def _apply_details(session: Session, by_key: dict[TaskKey, VideoRecord]) -> None:
    """Read the detail XComs of these task instances in one query and apply them to their records."""
    _, XCom, _ = _models()
    found: dict[TaskKey, dict[str, Any]] = defaultdict(dict)
    stamps: dict[TaskKey, dict[str, datetime]] = defaultdict(dict)
    rows = session.execute(
        select(
            XCom.dag_id, XCom.run_id, XCom.task_id, XCom.map_index, XCom.key, XCom.value, XCom.timestamp
        ).where(
            XCom.dag_id.in_({k.dag_id for k in by_key}),
            XCom.run_id.in_({k.run_id for k in by_key}),
            XCom.task_id.in_({k.task_id for k in by_key}),
            XCom.key.in_(DETAIL_KEYS),
        )
    )
    for row in rows:
        k = TaskKey(row.dag_id, row.run_id, row.task_id, row.map_index)
        if k in by_key:
            found[k][row.key] = row.value
            stamps[k][row.key] = row.timestamp
    for k, record in by_key.items():
        record.apply(found.get(k, {}), stamps.get(k, {}))


def _fill(session: Session, records: list[VideoRecord]) -> None:
    """XComs, rendered fields, the persisted copy (or the source task of a persisted copy)."""
    if not records:
        return
    _, _, RTIF = _models()
    by_key = {r.key: r for r in records}
    _apply_details(session, by_key)

    # The prompt of a task whose run predates XCom kling_request (or of a sensor): its rendered fields.
    missing = [r for r in records if r.prompt is None or r.endpoint_id is None or r.fal_conn_id is None]
    if missing:
        rendered = session.execute(
            select(RTIF.dag_id, RTIF.run_id, RTIF.task_id, RTIF.map_index, RTIF.rendered_fields).where(
                RTIF.dag_id.in_({r.key.dag_id for r in missing}),
                RTIF.run_id.in_({r.key.run_id for r in missing}),
                RTIF.task_id.in_({r.key.task_id for r in missing}),
            )
        )
        for rtif in rendered:
            target = by_key.get(TaskKey(rtif.dag_id, rtif.run_id, rtif.task_id, rtif.map_index))
            if target is None:
                continue
            prompt, endpoint_id, conn_id = prompt_from_rendered(rtif.rendered_fields)
            target.prompt = target.prompt or prompt
            target.endpoint_id = target.endpoint_id or endpoint_id
            target.fal_conn_id = target.fal_conn_id or conn_id
    _link_copies(session, records)


def _link_copies(session: Session, records: list[VideoRecord]) -> None:
    """Pair generation tasks and storage tasks of the same runs through the request id."""
    TI, XCom, _ = _models()
    runs = {(r.key.dag_id, r.key.run_id) for r in records}
    request_ids = {r.request_id for r in records if r.request_id}
    if not request_ids:
        return
    dag_ids = {d for d, _ in runs}
    run_ids = {r for _, r in runs}
    copies: dict[tuple[str, str, str], VideoRecord] = {}
    sources: dict[tuple[str, str, str], VideoRecord] = {}
    # Storage tasks of these runs, with their return values.
    storage_rows = session.execute(
        select(XCom.dag_id, XCom.run_id, XCom.task_id, XCom.map_index, XCom.value, TI.operator, TI.state)
        .join(
            TI,
            _same_task_instance(TI, XCom),
        )
        .where(
            XCom.dag_id.in_(dag_ids),
            XCom.run_id.in_(run_ids),
            XCom.key == KEY_RETURN,
            TI.operator.in_(STORAGE_OPERATORS),
        )
    )
    for row in storage_rows:
        if (row.dag_id, row.run_id) not in runs:
            continue
        copy = VideoRecord(
            key=TaskKey(row.dag_id, row.run_id, row.task_id, row.map_index), operator=row.operator
        )
        copy.apply({KEY_RETURN: row.value}, {})
        if copy.request_id in request_ids and copy.persisted is not None:
            copies[(row.dag_id, row.run_id, copy.request_id)] = copy
    # The task that submitted each request (for a storage task or a sensor: prompt, endpoint, cost).
    for source in _records_for_requests(session, dag_ids, run_ids, request_ids):
        if source.is_storage:
            continue
        ident = (source.key.dag_id, source.key.run_id, source.request_id or "")
        known = sources.get(ident)
        if known is None or (known.prompt is None and source.prompt is not None):
            sources[ident] = source
    for record in records:
        ident = (record.key.dag_id, record.key.run_id, record.request_id or "")
        origin = sources.get(ident)
        if origin is not None and origin.key != record.key:
            record.merge_source(origin)
        if not record.is_storage and record.persisted is None and ident in copies:
            record.persisted = copies[ident].persisted


def _records_for_requests(
    session: Session, dag_ids: set[str], run_ids: set[str], request_ids: set[str]
) -> list[VideoRecord]:
    TI, XCom, _ = _models()
    rows = session.execute(
        select(XCom.dag_id, XCom.run_id, XCom.task_id, XCom.map_index, XCom.value, TI.operator, TI.state)
        .join(
            TI,
            _same_task_instance(TI, XCom),
        )
        .where(XCom.dag_id.in_(dag_ids), XCom.run_id.in_(run_ids), XCom.key == KEY_REQUEST_ID)
    )
    found = [
        VideoRecord(
            key=TaskKey(r.dag_id, r.run_id, r.task_id, r.map_index), operator=r.operator, state=r.state
        )
        for r in rows
        if values.as_text(r.value) in request_ids
    ]
    found = [r for r in found if not r.is_storage]
    if not found:
        return []
    # Their details, without looking for copies again.
    _apply_details(session, {r.key: r for r in found})
    return found


# -- the gallery ---------------------------------------------------------------------------------


@dataclass
class Filters:
    """What the gallery shows: DAG, submission date range (UTC, inclusive), status group, page."""

    dag_id: str | None = None
    since: date | None = None
    until: date | None = None
    status: str | None = None
    page: int = 1


@dataclass
class SpendDay:
    day: date
    by_dag: dict[str, Decimal] = field(default_factory=dict)


@dataclass
class Gallery:
    records: list[VideoRecord]
    total: int
    page: int
    pages: int
    dag_ids: list[str]
    spend_days: list[SpendDay]
    spend_by_dag: dict[str, Decimal]
    spend_total: Decimal
    unpriced: int


@dataclass
class _Row:
    key: TaskKey
    request_id: str
    submitted_at: datetime
    state: str | None
    operator: str | None
    cost: Decimal | None
    has_video: bool


def gallery(session: Session, readable_dag_ids: Collection[str], filters: Filters) -> Gallery:
    """The page of videos the filters select, among the DAGs the user may read, and their spend."""
    TI, XCom, _ = _models()
    allowed = set(readable_dag_ids)
    if filters.dag_id is not None:
        allowed &= {filters.dag_id}
    req = aliased(XCom)
    ret = aliased(XCom)
    stmt = (
        select(
            req.dag_id,
            req.run_id,
            req.task_id,
            req.map_index,
            req.value,
            req.timestamp,
            TI.state,
            TI.operator,
            ret.value.label("return_value"),
        )
        .join(
            TI,
            _same_task_instance(TI, req),
        )
        .outerjoin(
            ret,
            and_(
                ret.dag_run_id == req.dag_run_id,
                ret.task_id == req.task_id,
                ret.map_index == req.map_index,
                ret.key == KEY_RETURN,
            ),
        )
        .where(req.key == KEY_REQUEST_ID, req.dag_id.in_(allowed))
    )
    if filters.since is not None:
        stmt = stmt.where(req.timestamp >= datetime.combine(filters.since, time.min, tzinfo=timezone.utc))
    if filters.until is not None:
        stmt = stmt.where(
            req.timestamp < datetime.combine(filters.until + timedelta(days=1), time.min, tzinfo=timezone.utc)
        )
    rows: list[_Row] = []
    for row in session.execute(stmt) if allowed else ():
        request_id = values.as_text(row.value)
        if request_id is None:
            continue
        ret_value = values.as_dict(row.return_value)
        rows.append(
            _Row(
                key=TaskKey(row.dag_id, row.run_id, row.task_id, row.map_index),
                request_id=request_id,
                submitted_at=row.timestamp,
                state=row.state,
                operator=row.operator,
                cost=values.as_cost(ret_value.get("cost_estimate")),
                has_video=bool(values.as_text(ret_value.get("video_url"))),
            )
        )
    groups = _group(rows)
    if filters.status:
        groups = [g for g in groups if status_group(g[0].state) == filters.status]
    groups.sort(
        key=lambda g: (g[0].submitted_at, g[0].key.run_id, g[0].key.task_id, g[0].key.map_index), reverse=True
    )

    total = len(groups)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(max(1, filters.page), pages)
    shown = groups[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    records = [VideoRecord(key=g[0].key, state=g[0].state, operator=g[0].operator) for g in shown]
    _fill(session, records)

    spend_days, spend_by_dag, spend_total, unpriced = _spend(groups)
    return Gallery(
        records=records,
        total=total,
        page=page,
        pages=pages,
        dag_ids=sorted(set(readable_dag_ids)),
        spend_days=spend_days,
        spend_by_dag=spend_by_dag,
        spend_total=spend_total,
        unpriced=unpriced,
    )


def _group(rows: Iterable[_Row]) -> list[list[_Row]]:
    """One entry per fal request of a run: a submit task and the sensor that waited for it show once.

    The first row of each group is the one to show: the task that has the video, else the latest.
    """
    by_request: dict[tuple[str, str, str], list[_Row]] = defaultdict(list)
    for row in rows:
        by_request[(row.key.dag_id, row.key.run_id, row.request_id)].append(row)
    groups = []
    for members in by_request.values():
        members.sort(key=lambda r: (r.has_video, r.cost is not None, r.submitted_at), reverse=True)
        groups.append(members)
    return groups


def _spend(groups: list[list[_Row]]) -> tuple[list[SpendDay], dict[str, Decimal], Decimal, int]:
    """Estimated cost per submission day (UTC) and DAG; each request counted once."""
    days: dict[date, SpendDay] = {}
    by_dag: dict[str, Decimal] = defaultdict(Decimal)
    total = Decimal(0)
    unpriced = 0
    for members in groups:
        cost = next((m.cost for m in members if m.cost is not None), None)
        first = min(members, key=lambda m: m.submitted_at)
        if cost is None:
            unpriced += 1
            continue
        day = (
            first.submitted_at.astimezone(timezone.utc).date()
            if first.submitted_at.tzinfo
            else first.submitted_at.date()
        )
        entry = days.setdefault(day, SpendDay(day))
        entry.by_dag[first.key.dag_id] = entry.by_dag.get(first.key.dag_id, Decimal(0)) + cost
        by_dag[first.key.dag_id] += cost
        total += cost
    return [days[d] for d in sorted(days)], dict(sorted(by_dag.items())), total, unpriced
