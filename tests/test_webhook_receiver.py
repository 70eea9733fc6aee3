"""The webhook receiver's route against the session's metadata DB (SQLite) and the emulator's JWKS.

The route runs in-process (Starlette's TestClient) with the real verification, key cache, replay
table and Airflow's asset manager; deliveries are signed with the emulator's key. The same table
is sent to a real api-server in tests/e2e/test_e2e_webhooks.py.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from webhook_cases import adversarial, body_for, signed

from airflow_provider_kling.plugins.webhooks import create_router
from airflow_provider_kling.webhooks.config import ReceiverSettings
from airflow_provider_kling.webhooks.jwks import JwksCache
from airflow_provider_kling.webhooks.registry import Registration, variable_key

MAX_BODY = 4096


def _settings(jwks_url: str) -> ReceiverSettings:
    return ReceiverSettings(jwks_url=jwks_url, max_body_bytes=MAX_BODY, jwks_min_refresh_interval=30)


def _client(settings: ReceiverSettings) -> tuple[TestClient, JwksCache]:
    keys = JwksCache(settings.jwks_url, min_refresh_interval=settings.jwks_min_refresh_interval)
    app = FastAPI()
    app.include_router(create_router(settings, keys))
    return TestClient(app), keys


@pytest.fixture
def asset(airflow_db):
    """An asset the metadata DB knows (as if a DAG declared it); unique per test."""
    from airflow.models.asset import AssetModel
    from airflow.utils.session import create_session

    name = f"kling_webhook_test_{uuid.uuid4().hex[:8]}"
    with create_session() as session:
        session.add(AssetModel(name=name, uri=name))
    return name


def _register(asset: str, request_id: str | None = None) -> str:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    request_id = request_id or str(uuid.uuid4())
    registration = Registration(
        request_id=request_id,
        endpoint_id="fal-ai/kling-video/v1.6/standard/text-to-video",
        asset_name=asset,
        asset_uri=asset,
        dag_id="producer",
        run_id="manual__1",
        task_id="submit",
        map_index=3,
        try_number=1,
        submitted_at=time.time(),
        duration=5,
        cost_estimate="0.25",
    )
    with create_session() as session:
        session.add(Variable(key=variable_key(request_id), val=registration.to_json()))
    return request_id


def _events(asset: str) -> list:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == asset)
        ).all()
        return [
            {
                "extra": row.extra,
                "source": (row.source_dag_id, row.source_run_id, row.source_task_id, row.source_map_index),
            }
            for row in rows
        ]


def _seen(*request_ids: str) -> int:
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    from airflow_provider_kling.webhooks.store import SEEN, ensure_table

    with create_session() as session:
        ensure_table(session)
        return session.scalar(
            select(func.count()).select_from(SEEN).where(SEEN.c.request_id.in_(request_ids))
        )


def _registered(request_id: str) -> bool:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalar(select(Variable).where(Variable.key == variable_key(request_id))) is not None


def test_valid_delivery_records_one_event_linked_to_the_task_and_retries_record_nothing(emulator, asset):
    client, keys = _client(_settings(f"{emulator.rest_url}/.well-known/jwks.json"))
    request_id = _register(asset)
    body = body_for(request_id)

    first = client.post(
        "/webhooks/fal", content=body, headers=signed(emulator.app.webhooks, request_id, body)
    )
    assert first.status_code == 200, first.text
    assert first.json() == {"status": "recorded"}
    (event,) = _events(asset)
    assert event["source"] == ("producer", "manual__1", "submit", 3)
    extra = event["extra"]
    assert extra["request_id"] == request_id
    assert extra["endpoint_id"] == "fal-ai/kling-video/v1.6/standard/text-to-video"
    assert extra["status"] == "OK"
    assert extra["video_url"] == "https://v3.fal.media/files/x/output.mp4"
    assert extra["error"] is None
    assert extra["cost_estimate"] == "0.25"
    assert extra["submitted_by"]["task_id"] == "submit"
    assert not _registered(request_id)  # the routing record is consumed

    # fal retrying the same completion: newly signed (new timestamp), answered 200, nothing new.
    retry = signed(emulator.app.webhooks, request_id, body, timestamp=int(time.time()) + 1)
    again = client.post("/webhooks/fal", content=body, headers=retry)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    assert len(_events(asset)) == 1
    assert keys.fetches == 1


def test_error_delivery_carries_fals_error(emulator, asset):
    client, _ = _client(_settings(f"{emulator.rest_url}/.well-known/jwks.json"))
    request_id = _register(asset)
    doc = {
        "error": "Invalid status code: 422",
        "gateway_request_id": request_id,
        "payload": {
            "detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "value_error.missing"}]
        },
        "request_id": request_id,
        "status": "ERROR",
    }
    body = json.dumps(doc, sort_keys=True).encode()
    response = client.post(
        "/webhooks/fal", content=body, headers=signed(emulator.app.webhooks, request_id, body)
    )
    assert response.status_code == 200, response.text
    (event,) = _events(asset)
    assert event["extra"]["status"] == "ERROR"
    assert event["extra"]["video_url"] is None
    assert event["extra"]["error"] == "Invalid status code: 422"
    assert event["extra"]["error_detail"]["detail"][0]["type"] == "value_error.missing"


def test_adversarial_deliveries_are_refused_and_record_nothing(emulator, asset, caplog):
    jwks = f"{emulator.rest_url}/.well-known/jwks.json"
    client, keys = _client(_settings(jwks))
    accepted = _register(asset)
    accepted_body = body_for(accepted)
    accepted_headers = signed(emulator.app.webhooks, accepted, accepted_body)
    assert client.post("/webhooks/fal", content=accepted_body, headers=accepted_headers).status_code == 200
    baseline = _events(asset)

    registered, unknown = _register(asset), str(uuid.uuid4())
    cases = adversarial(
        emulator.app.webhooks,
        registered,
        unknown,
        max_body=MAX_BODY,
        replay_of=(accepted_headers, accepted_body),
    )
    # A receiver whose JWKS URL is down (nothing listens there) for the "JWKS unreachable" row.
    down_client, down_keys = _client(_settings("http://127.0.0.1:9/.well-known/jwks.json"))
    results = {}
    for case in cases:
        target = down_client if case.setup == "jwks_down" else client
        response = target.post("/webhooks/fal", content=case.body, headers=case.headers)
        results[case.name] = response.status_code
        assert "webhook" in response.json()["detail"]
        assert accepted_body.decode() not in caplog.text  # reasons are logged, bodies never
    assert results == {case.name: case.status for case in cases}
    assert _events(asset) == baseline
    assert _seen(registered, unknown) == 0
    assert _registered(registered)  # still deliverable: the real delivery can come later
    # Forged deliveries were checked against cached keys: one fetch in all (none per request).
    assert keys.fetches == 1
    assert down_keys.fetches == 1

    refusals = [r.getMessage() for r in caplog.records if "fal webhook refused" in r.getMessage()]
    assert len(refusals) == len(cases)
    assert any("stale timestamp" in line for line in refusals)
    assert any("replay" in line for line in refusals)
    assert any("not submitted by this deployment" in line for line in refusals)


def test_delivery_for_an_asset_no_dag_declares_is_refused_for_fal_to_retry(emulator, airflow_db):
    client, _ = _client(_settings(f"{emulator.rest_url}/.well-known/jwks.json"))
    request_id = _register("kling_webhook_test_undeclared")
    body = body_for(request_id)
    response = client.post(
        "/webhooks/fal", content=body, headers=signed(emulator.app.webhooks, request_id, body)
    )
    assert response.status_code == 503
    assert _seen(request_id) == 0 and _registered(request_id)
