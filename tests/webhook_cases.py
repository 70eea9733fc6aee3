"""Signed fal webhook deliveries for tests: valid ones, and the adversarial table.

Valid deliveries are signed with the emulator's own key (the one its JWKS route publishes), through
its :class:`~airflow_provider_kling.emulator.webhooks.WebhookSender`, so they are byte for byte what
the emulator would POST. Each adversarial case changes one thing.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_kling.emulator.webhooks import WEBHOOK_USER_ID


@dataclass
class Case:
    """One delivery: what is sent and the status the receiver must answer."""

    name: str
    headers: dict[str, str]
    body: bytes
    status: int
    setup: str | None = None  # "jwks_down": the JWKS route fails while this case is sent
    before: list[Case] = field(default_factory=list)  # sent first (must succeed), e.g. for replays


def body_for(request_id: str, *, video_url: str = "https://v3.fal.media/files/x/output.mp4") -> bytes:
    payload = {
        "error": None,
        "gateway_request_id": request_id,
        "payload": {"video": {"url": video_url, "content_type": "video/mp4", "file_name": "output.mp4"}},
        "request_id": request_id,
        "status": "OK",
    }
    return json.dumps(payload, sort_keys=True).encode()


def signed(
    sender: Any, request_id: str, body: bytes, *, timestamp: int | None = None, user_id: str | None = None
) -> dict[str, str]:
    """Headers fal would send, signed by ``sender`` (the emulator's WebhookSender)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    if user_id is None:
        signature = sender.sign(request_id, ts, body)
    else:
        import hashlib

        message = "\n".join([request_id, user_id, ts, hashlib.sha256(body).hexdigest()]).encode()
        signature = sender._private_key().sign(message).hex()
    return {
        "Content-Type": "application/json",
        "X-Fal-Webhook-Request-Id": request_id,
        "X-Fal-Webhook-User-Id": user_id or WEBHOOK_USER_ID,
        "X-Fal-Webhook-Timestamp": ts,
        "X-Fal-Webhook-Signature": signature,
    }


def adversarial(
    sender: Any, registered: str, unknown: str, *, max_body: int, replay_of: tuple[dict[str, str], bytes]
) -> list[Case]:
    """The table: ``registered`` is a request this deployment submitted (still undelivered),
    ``unknown`` one it never did; ``replay_of`` is a delivery that was already accepted."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    body = body_for(registered)
    good = signed(sender, registered, body)
    now = int(time.time())
    other_key = Ed25519PrivateKey.generate()

    def with_(**changes: str) -> dict[str, str]:
        return {**good, **changes}

    import hashlib

    wrong_key_sig = other_key.sign(
        "\n".join(
            [registered, WEBHOOK_USER_ID, good["X-Fal-Webhook-Timestamp"], hashlib.sha256(body).hexdigest()]
        ).encode()
    ).hex()
    big = body_for(registered, video_url="https://v3.fal.media/" + "x" * max_body)
    not_json = b'{"request_id": "' + registered.encode() + b'", "status": "OK", '
    missing = {k: v for k, v in good.items() if k != "X-Fal-Webhook-Signature"}
    other_body = body_for(unknown)
    mismatched = body_for(unknown)
    return [
        Case("forged signature", with_(**{"X-Fal-Webhook-Signature": os.urandom(64).hex()}), body, 401),
        Case("signed with another key", with_(**{"X-Fal-Webhook-Signature": wrong_key_sig}), body, 401),
        Case("tampered body", good, body.replace(b"output.mp4", b"evil.mp4"), 401),
        Case("tampered request id header", with_(**{"X-Fal-Webhook-Request-Id": unknown}), body, 401),
        Case("tampered user id header", with_(**{"X-Fal-Webhook-User-Id": "someone-else"}), body, 401),
        Case(
            "tampered timestamp header",
            with_(**{"X-Fal-Webhook-Timestamp": str(int(good["X-Fal-Webhook-Timestamp"]) + 1)}),
            body,
            401,
        ),
        Case("stale timestamp (-10 min)", signed(sender, registered, body, timestamp=now - 600), body, 401),
        Case("future timestamp (+10 min)", signed(sender, registered, body, timestamp=now + 600), body, 401),
        Case("replayed accepted delivery", replay_of[0], replay_of[1], 401),
        Case("oversized body", signed(sender, registered, big), big, 413),
        Case("missing signature header", missing, body, 401),
        Case("no fal headers at all", {"Content-Type": "application/json"}, body, 401),
        Case("malformed JSON, valid signature", signed(sender, registered, not_json), not_json, 400),
        Case("body request id differs from header", signed(sender, registered, mismatched), mismatched, 400),
        Case("unknown request id, valid signature", signed(sender, unknown, other_body), other_body, 400),
        Case("JWKS unreachable", good, body, 503, setup="jwks_down"),
    ]
