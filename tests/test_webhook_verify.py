"""Webhook verification (pure) and fal's signing-key cache (against the emulator's JWKS route)."""

from __future__ import annotations

import json
import time

import pytest
from webhook_cases import body_for, signed

from airflow_provider_kling.webhooks.jwks import JwksCache
from airflow_provider_kling.webhooks.verify import (
    Delivery,
    SignedHeaders,
    WebhookRefused,
    check_timestamp,
    check_user,
    public_keys,
    signature_valid,
)

RID = "5057fca7-0000-4000-8000-000000000001"


def test_signed_message_is_fals_scheme_over_the_raw_body():
    import hashlib

    body = b'{"a": 1}'
    headers = SignedHeaders(RID, "user-1", "1700000000", b"\0" * 64)
    assert headers.message(body) == f"{RID}\nuser-1\n1700000000\n{hashlib.sha256(body).hexdigest()}".encode()
    # One replay key per signed message: the same body and headers give the same key.
    assert headers.replay_key(body) == headers.replay_key(b'{"a": 1}') != headers.replay_key(b'{"a":1}')


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"x-fal-webhook-signature": None}, "missing header"),
        ({"x-fal-webhook-signature": "zz" * 64}, "malformed signature"),
        ({"x-fal-webhook-signature": "ab" * 63}, "malformed signature"),
        ({"x-fal-webhook-timestamp": "17e9"}, "malformed timestamp"),
        ({"x-fal-webhook-request-id": "a\nINFO forged log line"}, "malformed request id"),
        ({"x-fal-webhook-user-id": "u" * 200}, "malformed user id"),
    ],
)
def test_header_shape_is_checked_before_any_crypto(change, reason):
    headers = {
        "x-fal-webhook-request-id": RID,
        "x-fal-webhook-user-id": "user-1",
        "x-fal-webhook-timestamp": "1700000000",
        "x-fal-webhook-signature": "ab" * 64,
        **change,
    }
    with pytest.raises(WebhookRefused) as refused:
        SignedHeaders.parse({k: v for k, v in headers.items() if v is not None})
    assert refused.value.status == 401
    assert reason in refused.value.reason
    assert "\n" not in refused.value.reason  # header values are escaped in log reasons


def test_timestamp_window_both_ways():
    assert check_timestamp("1000", now=1300, tolerance=300) == 1000
    assert check_timestamp("1300", now=1000, tolerance=300) == 1300
    with pytest.raises(WebhookRefused, match="stale"):
        check_timestamp("1000", now=1301, tolerance=300)
    with pytest.raises(WebhookRefused, match="future"):
        check_timestamp("1301", now=1000, tolerance=300)


def test_user_allowlist():
    check_user("anyone", ())
    check_user("u1", ("u0", "u1"))
    with pytest.raises(WebhookRefused) as refused:
        check_user("u2", ("u0", "u1"))
    assert refused.value.status == 401


def test_public_keys_skip_foreign_key_types_and_reject_non_jwks():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    import base64

    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    jwks = {
        "keys": [
            {"kty": "RSA", "n": "..."},
            {"kty": "OKP", "crv": "X25519", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "x": x},
        ]
    }
    assert public_keys(jwks) == [raw]
    message = b"hello"
    assert signature_valid([b"\1" * 32, raw], key.sign(message), message)
    assert not signature_valid([raw], key.sign(message), message + b"!")
    with pytest.raises(ValueError):
        public_keys({"nokeys": []})


def test_delivery_body_is_bound_to_the_signed_request_id():
    headers = SignedHeaders(RID, "u", "1", b"\0" * 64)
    delivery = Delivery.parse(body_for(RID), headers)
    assert delivery.event_extra()["video_url"] == "https://v3.fal.media/files/x/output.mp4"
    with pytest.raises(WebhookRefused) as refused:
        Delivery.parse(body_for("another"), headers)
    assert refused.value.status == 400
    with pytest.raises(WebhookRefused, match="not a JSON object"):
        Delivery.parse(b"[1, 2]", headers)
    ok_without_video = json.dumps({"request_id": RID, "status": "OK", "payload": {"images": []}}).encode()
    extra = Delivery.parse(ok_without_video, headers).event_extra()
    assert extra["status"] == "ERROR" and "no video URL" in extra["error"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _message(emulator, body: bytes, **kwargs) -> tuple[bytes, bytes]:
    parsed = SignedHeaders.parse(
        {k.lower(): v for k, v in signed(emulator.app.webhooks, RID, body, **kwargs).items()}
    )
    return parsed.signature, parsed.message(body)


async def test_keys_are_cached_for_the_ttl_and_forgeries_never_fetch_per_request(emulator):
    clock = FakeClock()
    cache = JwksCache(
        f"{emulator.rest_url}/.well-known/jwks.json", ttl=600, min_refresh_interval=60, clock=clock
    )
    body = body_for(RID)
    signature, message = _message(emulator, body)
    await cache.verify(signature, message)
    await cache.verify(signature, message)
    assert emulator.requests["jwks"] == 1

    # A flood of forged signatures: the first may trigger one refresh (fal might have rotated its
    # key), the rest are refused from the cache.
    clock.now += 61
    for _ in range(50):
        with pytest.raises(WebhookRefused) as refused:
            await cache.verify(bytes(64), message)
        assert refused.value.status == 401
    assert emulator.requests["jwks"] == 2

    clock.now += 600  # TTL over: fetched again on next use
    await cache.verify(signature, message)
    assert emulator.requests["jwks"] == 3


async def test_a_rotated_key_is_fetched_once(emulator):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    clock = FakeClock()
    cache = JwksCache(
        f"{emulator.rest_url}/.well-known/jwks.json", ttl=3600, min_refresh_interval=60, clock=clock
    )
    body = body_for(RID)
    await cache.verify(*_message(emulator, body))
    emulator.app.webhooks._key = Ed25519PrivateKey.generate()  # fal rotates its signing key
    clock.now += 61
    await cache.verify(*_message(emulator, body, timestamp=int(time.time()) + 1))
    assert emulator.requests["jwks"] == 2
    assert cache.fetches == 2


async def test_unreachable_jwks_refuses_with_503_and_backs_off(emulator):
    clock = FakeClock()
    cache = JwksCache(f"{emulator.rest_url}/.well-known/jwks.json", min_refresh_interval=60, clock=clock)
    emulator.inject("nginx_503", route="jwks", times=None)
    body = body_for(RID)
    for _ in range(5):
        with pytest.raises(WebhookRefused) as refused:
            await cache.verify(*_message(emulator, body))
        assert refused.value.status == 503
    assert emulator.requests["jwks"] == 1  # one attempt per refresh interval, not one per delivery
    emulator.app.faults.clear()
    clock.now += 61
    await cache.verify(*_message(emulator, body))
    assert emulator.requests["jwks"] == 2
