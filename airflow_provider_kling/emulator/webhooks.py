"""Webhook delivery, signed the way fal signs them (Ed25519, see fal-queue-protocol.md §6.2).

The key pair is made lazily (only when a webhook is sent or the JWKS is asked for), so
``cryptography`` costs nothing at start-up. Deliveries are recorded for tests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import threading
import time
from typing import Any

import httpx

from airflow_provider_kling.emulator.queue import Job
from airflow_provider_kling.emulator.state import Knobs

log = logging.getLogger(__name__)

WEBHOOK_USER_ID = "emulator-user"
KEY_ID = "fal-emulator-1"


class WebhookSender:
    """Signs and POSTs completion webhooks; serves the matching JWKS."""

    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self._key: Any = None
        self._key_lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._lock = threading.Lock()
        self._deliveries: list[dict[str, Any]] = []

    # --- keys --------------------------------------------------------------------------------------
    def _private_key(self) -> Any:
        with self._key_lock:
            if self._key is None:
                from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

                self._key = Ed25519PrivateKey.generate()
            return self._key

    def jwks(self) -> dict[str, Any]:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = self._private_key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return {
            "keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": KEY_ID, "use": "sig", "alg": "EdDSA"}]
        }

    def sign(self, request_id: str, timestamp: str, body: bytes) -> str:
        message = "\n".join([request_id, WEBHOOK_USER_ID, timestamp, hashlib.sha256(body).hexdigest()])
        return self._private_key().sign(message.encode("utf-8")).hex()

    # --- delivery ----------------------------------------------------------------------------------
    @staticmethod
    def body_for(job: Job) -> bytes:
        ok = job.result_status < 400
        payload = {
            "error": None if ok else f"Invalid status code: {job.result_status}",
            "gateway_request_id": job.request_id,
            "payload": job.result_body,
            "request_id": job.request_id,
            "status": "OK" if ok else "ERROR",
        }
        # fal's bodies are Python json.dumps output with sorted keys; signatures cover these exact bytes.
        return json.dumps(payload, sort_keys=True).encode("utf-8")

    def schedule(self, job: Job) -> None:
        if not job.webhook_url:
            return
        task = asyncio.get_running_loop().create_task(
            self._deliver(job.webhook_url, job.request_id, self.body_for(job), completed_at=time.time())
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, request_id: str, body: bytes, completed_at: float) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=15.0, trust_env=False)
        attempts = max(1, int(self.knobs.webhook_attempts))
        for attempt in range(1, attempts + 1):
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Fal-Webhook-Request-Id": request_id,
                "X-Fal-Webhook-User-Id": WEBHOOK_USER_ID,
                "X-Fal-Webhook-Timestamp": timestamp,
                "X-Fal-Webhook-Signature": self.sign(request_id, timestamp, body),
            }
            record: dict[str, Any] = {
                "request_id": request_id,
                "url": url,
                "attempt": attempt,
                "timestamp": timestamp,  # with body_for(job), what it takes to re-sign this exact delivery
                "completed_at": completed_at,  # wall clock, for latency measurements
                "sent_at": time.time(),
            }
            try:
                response = await self._client.post(url, content=body, headers=headers)
                record["status_code"] = response.status_code
            except httpx.HTTPError as exc:
                record["error"] = type(exc).__name__
            with self._lock:
                self._deliveries.append(record)
            if 200 <= record.get("status_code", 0) < 300:
                return
            if attempt < attempts:
                await asyncio.sleep(self.knobs.webhook_retry_delay)
        log.info("emulator: webhook for %s not delivered after %d attempts", request_id, attempts)

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._deliveries)

    def clear(self) -> None:
        with self._lock:
            self._deliveries.clear()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
