"""``POST /kling/webhooks/fal``: fal's completion webhooks, recorded as Airflow asset events.

Security model: fal must reach this route from the internet, so it does not use Airflow's login
(fal has no Airflow account). The Ed25519 signature fal puts on every delivery is its only
authentication, and it is checked before anything else is done with the body: header shape,
timestamp window, size limit while reading, signature over the exact raw bytes with fal's published
keys. Only then is the body parsed, and the delivery must name a request that this deployment
submitted (any fal account can make fal sign a webhook to any URL). Replays are refused through a
table in the metadata database, so they stay refused across restarts and api-servers.

A refusal answers 401 (authentication), 400 (authentic but unusable), 413 (too large) or 503 (keys
unavailable, asset unknown: fal retries for two hours), logs the reason -- never the body -- and
records nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from airflow_provider_kling.webhooks.config import ReceiverSettings
from airflow_provider_kling.webhooks.jwks import JwksCache
from airflow_provider_kling.webhooks.verify import (
    Delivery,
    SignedHeaders,
    WebhookRefused,
    check_timestamp,
    check_user,
    shown,
)

log = logging.getLogger(__name__)

ROUTE = "/webhooks/fal"
_ANSWERS = {
    400: "webhook refused: bad request",
    401: "webhook refused: not authenticated",
    413: "webhook refused: body too large",
    503: "webhook not accepted now: retry later",
}


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > limit
        except ValueError:
            raise WebhookRefused(400, "malformed Content-Length") from None
        if too_big:
            raise WebhookRefused(413, f"declared body of {shown(declared)} bytes exceeds {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookRefused(413, f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_router(settings: ReceiverSettings | None = None, keys: JwksCache | None = None) -> APIRouter:
    """The receiver's router.

    :param settings: receiver settings; read from ``[kling]`` when omitted.
    :param keys: the signing-key cache; one per router (so per api-server process) when omitted.
    """
    settings = settings or ReceiverSettings.from_airflow()
    keys = keys or JwksCache(
        settings.jwks_url,
        ttl=settings.jwks_cache_ttl,
        min_refresh_interval=settings.jwks_min_refresh_interval,
    )
    router = APIRouter()

    @router.post(ROUTE, include_in_schema=False)
    async def receive_fal_webhook(request: Request) -> JSONResponse:
        client = request.client.host if request.client else "?"
        try:
            # Cheapest refusals first: headers and clock before reading up to max_body_bytes.
            signed = SignedHeaders.parse(request.headers)
            sent_at = check_timestamp(signed.timestamp, time.time(), settings.timestamp_tolerance)
            check_user(signed.user_id, settings.user_ids)
            body = await read_limited(request, settings.max_body_bytes)
            await keys.verify(signed.signature, signed.message(body))
            # Authentic from here on: only now is the body read as JSON.
            delivery = Delivery.parse(body, signed)
            from airflow_provider_kling.webhooks.store import record_delivery

            outcome = await run_in_threadpool(
                record_delivery,
                signed,
                body,
                delivery,
                sent_at=sent_at,
                tolerance=settings.timestamp_tolerance,
                retention=settings.retention,
            )
        except WebhookRefused as refused:
            log.warning(
                "fal webhook refused (%d) from %s, request id header %s: %s",
                refused.status,
                client,
                shown(request.headers.get("x-fal-webhook-request-id")),
                refused.reason,
            )
            return JSONResponse({"detail": _ANSWERS[refused.status]}, status_code=refused.status)
        answer: dict[str, Any] = {"status": "recorded" if outcome.recorded else "duplicate"}
        return JSONResponse(answer, status_code=200)

    return router
