"""fal webhook verification, sans-I/O: headers, timestamp window, Ed25519 signature, body checks.

fal signs ``request_id + "\\n" + user_id + "\\n" + timestamp + "\\n" + sha256_hex(raw_body)`` with
Ed25519 and publishes the public keys as a JWKS (fal-queue-protocol.md §6.2). Everything here works
on bytes and strings handed in by the caller; fetching keys and storing deliveries live elsewhere.

Every refusal is a :class:`WebhookRefused` carrying the HTTP status to answer and a reason for the
server log. The reason never contains the body, and header values in it are shortened and escaped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HEADER_REQUEST_ID = "x-fal-webhook-request-id"
HEADER_USER_ID = "x-fal-webhook-user-id"
HEADER_TIMESTAMP = "x-fal-webhook-timestamp"
HEADER_SIGNATURE = "x-fal-webhook-signature"
SIGNATURE_HEADERS = (HEADER_REQUEST_ID, HEADER_USER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)

# Ids fal hands out are UUIDs and short account ids; anything longer or stranger is not fal's.
_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{128}")


class WebhookRefused(Exception):
    """A delivery that must not be acted on.

    :param status: HTTP status to answer (400, 401, 413 or 503).
    :param reason: why, for the server log (no body content, header values escaped).
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def shown(value: str | None, limit: int = 64) -> str:
    """A header value safe for a log line: escaped (no newlines to forge log lines) and shortened."""
    if value is None:
        return "<missing>"
    text = value if len(value) <= limit else value[:limit] + "..."
    return repr(text)


@dataclass(frozen=True)
class SignedHeaders:
    """The four signature headers of a delivery, checked for shape only.

    :param request_id: ``X-Fal-Webhook-Request-Id``.
    :param user_id: ``X-Fal-Webhook-User-Id`` (the fal account that submitted the request).
    :param timestamp: ``X-Fal-Webhook-Timestamp`` exactly as sent (unix seconds).
    :param signature: ``X-Fal-Webhook-Signature`` decoded from hex (64 bytes).
    """

    request_id: str
    user_id: str
    timestamp: str
    signature: bytes

    @classmethod
    def parse(cls, headers: Mapping[str, str]) -> SignedHeaders:
        """Read the headers (``headers`` must look names up case-insensitively, as Starlette's do)."""
        values = {name: headers.get(name) for name in SIGNATURE_HEADERS}
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise WebhookRefused(401, f"missing header(s) {', '.join(missing)}")
        request_id, user_id = str(values[HEADER_REQUEST_ID]), str(values[HEADER_USER_ID])
        timestamp, signature = str(values[HEADER_TIMESTAMP]), str(values[HEADER_SIGNATURE])
        if not _ID.fullmatch(request_id):
            raise WebhookRefused(401, f"malformed request id header {shown(request_id)}")
        if not _ID.fullmatch(user_id):
            raise WebhookRefused(401, f"malformed user id header {shown(user_id)}")
        if not _TIMESTAMP.fullmatch(timestamp):
            raise WebhookRefused(401, f"malformed timestamp header {shown(timestamp)}")
        if not _SIGNATURE.fullmatch(signature):
            raise WebhookRefused(401, "malformed signature header (expected 128 hex characters)")
        return cls(request_id, user_id, timestamp, bytes.fromhex(signature))

    def message(self, body: bytes) -> bytes:
        """The bytes fal signed: the exact raw body is hashed, never a re-serialised one."""
        digest = hashlib.sha256(body).hexdigest()
        return "\n".join((self.request_id, self.user_id, self.timestamp, digest)).encode("utf-8")

    def replay_key(self, body: bytes) -> str:
        """One key per signed message: a resent copy of a delivery has the same key.

        Keyed on the message rather than the signature so that a second valid encoding of the same
        signature could not pass as new.
        """
        return hashlib.sha256(self.message(body)).hexdigest()


def check_timestamp(timestamp: str, now: float, tolerance: float) -> int:
    """Unix seconds of the delivery, refused when further than ``tolerance`` from ``now`` either way."""
    sent = int(timestamp)
    skew = now - sent
    if skew > tolerance:
        raise WebhookRefused(401, f"stale timestamp ({int(skew)} s old, window {int(tolerance)} s)")
    if skew < -tolerance:
        raise WebhookRefused(401, f"timestamp {int(-skew)} s in the future (window {int(tolerance)} s)")
    return sent


def check_user(user_id: str, allowed: Sequence[str]) -> None:
    """Refuse accounts outside ``allowed`` (empty: any account; the request registry still applies)."""
    if allowed and not any(hmac.compare_digest(user_id.encode(), ok.encode()) for ok in allowed):
        raise WebhookRefused(401, f"fal user id {shown(user_id)} is not in [kling] webhook_user_ids")


def public_keys(jwks: Any) -> list[bytes]:
    """Raw 32-byte Ed25519 public keys from a JWKS document; other key types are skipped.

    :raises ValueError: when the document is not a JWKS at all.
    """
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise ValueError("JWKS document has no 'keys' list")
    keys: list[bytes] = []
    for jwk in jwks["keys"]:
        if not isinstance(jwk, Mapping) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        x = jwk.get("x")
        if not isinstance(x, str):
            continue
        try:
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
        except ValueError:
            continue
        if len(raw) == 32:
            keys.append(raw)
    return keys


def signature_valid(keys: Iterable[bytes], signature: bytes, message: bytes) -> bool:
    """True when any of ``keys`` verifies ``signature`` over ``message`` (fal may rotate keys)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    for raw in keys:
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
        except (InvalidSignature, ValueError):
            continue
        return True
    return False


@dataclass(frozen=True)
class Delivery:
    """A verified delivery's content, as the receiver records it.

    :param request_id: fal's queue request id (equal in the signed header and the body).
    :param status: ``"OK"`` or ``"ERROR"``.
    :param payload: the model's result (OK) or fal's error body (ERROR); may be None.
    :param error: fal's error text for ERROR deliveries.
    :param payload_error: set when fal could not serialise the result.
    :param gateway_request_id: the id of fal's last attempt (usually the request id).
    """

    request_id: str
    status: str
    payload: Any
    error: str | None
    payload_error: str | None
    gateway_request_id: str | None

    @classmethod
    def parse(cls, body: bytes, signed: SignedHeaders) -> Delivery:
        """Parse the (already verified) body; its request id must be the one fal signed."""
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookRefused(400, "body is not JSON") from None
        if not isinstance(doc, dict):
            raise WebhookRefused(400, "body is not a JSON object")
        request_id = doc.get("request_id")
        if not isinstance(request_id, str) or not hmac.compare_digest(
            request_id.encode(), signed.request_id.encode()
        ):
            raise WebhookRefused(400, "body request_id differs from the signed request id header")
        status = doc.get("status")
        if status not in ("OK", "ERROR"):
            raise WebhookRefused(400, f"unknown delivery status {shown(str(status))}")
        error, payload_error = doc.get("error"), doc.get("payload_error")
        gateway = doc.get("gateway_request_id")
        return cls(
            request_id=request_id,
            status=status,
            payload=doc.get("payload"),
            error=str(error) if error is not None else None,
            payload_error=str(payload_error) if payload_error is not None else None,
            gateway_request_id=str(gateway) if gateway is not None else None,
        )

    def event_extra(self) -> dict[str, Any]:
        """The asset event's ``extra``: the Kling operator's output fields plus fal's status and error.

        A consumer can hand it straight to ``KlingVideoToObjectStorageOperator(source=...)``.
        """
        video = self.payload.get("video") if isinstance(self.payload, Mapping) else None
        video = video if isinstance(video, Mapping) else {}
        ok = self.status == "OK" and bool(video.get("url"))
        error = self.error or self.payload_error
        if self.status == "OK" and not ok:
            error = error or "fal reported OK but the result has no video URL"
        return {
            "request_id": self.request_id,
            "status": "OK" if ok else "ERROR",
            "video_url": video.get("url") if ok else None,
            "content_type": video.get("content_type") if ok else None,
            "file_name": video.get("file_name") if ok else None,
            "file_size": video.get("file_size") if ok else None,
            "error": None if ok else error,
            "error_detail": None if ok else _short_detail(self.payload),
        }


def _short_detail(payload: Any, limit: int = 2000) -> Any:
    """fal's error body (validation details) kept small enough for an asset event."""
    if payload is None:
        return None
    text = json.dumps(payload, default=str)
    return payload if len(text) <= limit else text[:limit] + "..."
