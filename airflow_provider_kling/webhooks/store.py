"""Recording a verified delivery in Airflow's metadata database (runs in the api-server).

One transaction does everything, so a delivery is recorded completely or not at all:

1. insert the delivery's replay key (a digest of the signed message) into ``kling_webhook_seen``:
   a key already there is a replay of a delivery already accepted -> refused;
2. insert ``req:<request_id>`` into the same table: already there means fal is retrying a
   completion that was recorded -> answered 200, nothing new recorded;
3. read the request's registration (the Variable the submitting task wrote): none means this
   deployment never submitted that request -> refused;
4. record one asset event through Airflow's asset manager (which queues the consumer DAGs, exactly
   as the REST API's ``POST /assets/events`` does), linked to the submitting task instance;
5. delete the registration.

The primary key on ``kling_webhook_seen.key`` makes steps 1 and 2 atomic across api-servers: of two
concurrent copies, one insert waits for the other's commit and then fails. Rows carry an expiry
(replay keys: the timestamp window; delivered requests: ``[kling] webhook_retention``) and expired
rows are purged as deliveries come in, so the table stays the size of the recent traffic.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Integer, MetaData, String, Table, delete, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from airflow_provider_kling.webhooks.registry import Registration, variable_key
from airflow_provider_kling.webhooks.verify import Delivery, SignedHeaders, WebhookRefused, shown

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

_metadata = MetaData()
SEEN = Table(
    "kling_webhook_seen",
    _metadata,
    # "msg:<sha256 of the signed message>" or "req:<fal request id>"
    Column("key", String(100), primary_key=True),
    Column("request_id", String(128), nullable=False),
    Column("expires_at", Integer, nullable=False, index=True),  # unix seconds
    Column("asset_event_id", Integer, nullable=True),
)

PURGE_EVERY = 60.0  # seconds between purges of expired rows, per process
_table_ready = threading.Event()
_table_lock = threading.Lock()
_last_purge = 0.0


@dataclass(frozen=True)
class Outcome:
    """What the receiver did with a verified delivery.

    :param recorded: True when an asset event was recorded, False for a duplicate of a recorded one.
    :param asset_event_id: the event's id (None for a duplicate).
    """

    recorded: bool
    asset_event_id: int | None = None


def ensure_table(session: Session) -> None:
    """Create ``kling_webhook_seen`` in the metadata database the first time it is needed.

    The provider has no Airflow migration of its own; ``checkfirst`` makes creation idempotent and a
    concurrent creator (another api-server) losing the race is fine.
    """
    if _table_ready.is_set():
        return
    with _table_lock:
        if _table_ready.is_set():
            return
        bind = session.get_bind()
        try:
            _metadata.create_all(bind=bind, checkfirst=True)
        except (OperationalError, ProgrammingError):
            _metadata.create_all(bind=bind, checkfirst=True)  # lost a creation race: now it exists
        _table_ready.set()


def _purge(session: Session, now: float) -> None:
    global _last_purge
    if now - _last_purge < PURGE_EVERY:
        return
    _last_purge = now
    session.execute(delete(SEEN).where(SEEN.c.expires_at < int(now)))


def _seen_keys(session: Session, *keys: str) -> set[str]:
    return set(session.scalars(select(SEEN.c.key).where(SEEN.c.key.in_(keys))))


def _insert_seen(session: Session, key: str, request_id: str, expires_at: float) -> None:
    # A concurrent copy that got here first makes this (or the commit) raise IntegrityError; the
    # caller then rolls back and looks again. (No savepoint: SQLite would commit on its release.)
    session.execute(insert(SEEN).values(key=key, request_id=request_id, expires_at=int(expires_at)))


def record_delivery(
    signed: SignedHeaders,
    body: bytes,
    delivery: Delivery,
    *,
    sent_at: int,
    tolerance: float,
    retention: float,
    now: float | None = None,
) -> Outcome:
    """Record a verified delivery (see the module docstring); refusals raise :class:`WebhookRefused`.

    Nothing is written when this raises: the transaction is rolled back.
    """
    from airflow.utils.session import create_session

    now = time.time() if now is None else now
    for attempt in (1, 2):
        try:
            with create_session() as session:
                ensure_table(session)
                try:
                    outcome = _record(session, signed, body, delivery, sent_at, tolerance, retention, now)
                except BaseException:
                    session.rollback()
                    raise
                if not outcome.recorded:
                    session.rollback()  # a duplicate leaves no trace either
            return outcome
        except IntegrityError:
            if attempt == 2:
                raise
            # Another api-server recorded a copy of this delivery meanwhile: look again, it is
            # a replay or a duplicate now.
            log.info("fal webhook: concurrent copy of a delivery for %s; checking again", delivery.request_id)
    raise AssertionError("unreachable")


def _record(
    session: Session,
    signed: SignedHeaders,
    body: bytes,
    delivery: Delivery,
    sent_at: int,
    tolerance: float,
    retention: float,
    now: float,
) -> Outcome:
    from airflow.models.variable import Variable

    _purge(session, now)
    request_id = delivery.request_id
    message_key, request_key = f"msg:{signed.replay_key(body)}", f"req:{request_id}"
    seen = _seen_keys(session, message_key, request_key)
    if message_key in seen:
        raise WebhookRefused(401, f"replay of an accepted delivery for request {shown(request_id)}")
    if request_key in seen:
        log.info("fal webhook: request %s was already recorded; fal's retry records nothing", request_id)
        return Outcome(recorded=False)
    # The message key is kept until its timestamp can no longer pass the window (plus clock slack).
    _insert_seen(session, message_key, request_id, sent_at + tolerance + 60)
    _insert_seen(session, request_key, request_id, now + retention)

    variable = session.scalar(select(Variable).where(Variable.key == variable_key(request_id)))
    if variable is None:
        raise WebhookRefused(400, f"request {shown(request_id)} was not submitted by this deployment")
    try:
        registration = Registration.from_json(variable.val)
    except (ValueError, TypeError) as exc:
        raise WebhookRefused(
            400, f"registration of request {shown(request_id)} is unreadable: {exc}"
        ) from None
    if registration.request_id != request_id:
        raise WebhookRefused(400, f"registration of request {shown(request_id)} names another request")
    if now - registration.submitted_at > retention:
        raise WebhookRefused(400, f"request {shown(request_id)} was submitted longer ago than the retention")

    event_id = _record_asset_event(session, registration, delivery)
    session.execute(SEEN.update().where(SEEN.c.key == request_key).values(asset_event_id=event_id))
    session.delete(variable)
    log.info(
        "fal webhook: request %s (%s) recorded as asset event %s on %r for %s/%s/%s[%s]",
        request_id,
        delivery.status,
        event_id,
        registration.asset_name,
        registration.dag_id,
        registration.run_id,
        registration.task_id,
        registration.map_index,
    )
    return Outcome(recorded=True, asset_event_id=event_id)


class AssetNotFound(WebhookRefused):
    """The registration names an asset no DAG declares (yet): fal retries, a deploy may fix it."""

    def __init__(self, name: str) -> None:
        super().__init__(503, f"asset {name!r} is not known to Airflow: no DAG declares it")


def _record_asset_event(session: Session, registration: Registration, delivery: Delivery) -> int:
    from airflow.assets.manager import asset_manager
    from airflow.models.asset import AssetModel

    asset = session.scalar(
        select(AssetModel).where(
            AssetModel.name == registration.asset_name, AssetModel.uri == registration.asset_uri
        )
    )
    if asset is None:
        raise AssetNotFound(registration.asset_name)
    extra: dict[str, Any] = {
        **delivery.event_extra(),
        "endpoint_id": registration.endpoint_id,
        "duration": registration.duration,
        "cost_estimate": registration.cost_estimate,
        "submitted_by": registration.source(),
    }
    kwargs: dict[str, Any] = {}
    partitioned, plain = _consumers(asset)
    if partitioned and "partition_key" in inspect.signature(asset_manager.register_asset_change).parameters:
        # Partition-aware consumers (PartitionedAssetTimetable) get one run per video this way.
        kwargs["partition_key"] = delivery.request_id
    event = asset_manager.register_asset_change(asset=asset, extra=extra, session=session, **kwargs)
    if event is None:
        raise AssetNotFound(registration.asset_name)
    if kwargs and plain:
        _queue_plain_consumers(session, asset.id, plain)
    # Link the event to the task instance that paid for the video (the UI's "source" of the event).
    event.source_dag_id = registration.dag_id
    event.source_run_id = registration.run_id
    event.source_task_id = registration.task_id
    event.source_map_index = registration.map_index
    session.flush()
    return int(event.id)


def _consumers(asset: Any) -> tuple[list[Any], list[Any]]:
    """(partition-aware, plain) unpaused DAGs scheduled on the asset."""
    dags = [ref.dag for ref in getattr(asset, "scheduled_dags", []) if not ref.dag.is_paused]
    partitioned = [dag for dag in dags if getattr(dag, "timetable_partitioned", False)]
    return partitioned, [dag for dag in dags if dag not in partitioned]


def _queue_plain_consumers(session: Session, asset_id: int, dags: list[Any]) -> None:
    """An event with a partition key queues only partition-aware DAGs; queue the plain ones too."""
    from airflow.assets.manager import AssetManager

    queue = getattr(AssetManager, "_queue_dagruns_nonpartitioned_slow_path", None)
    if queue is None:
        log.warning(
            "fal webhook: DAGs %s are scheduled on a partitioned asset without partitions; not queued",
            [dag.dag_id for dag in dags],
        )
        return
    queue(asset_id, set(dags), session)
