"""File uploads to fal storage as pure request builders and response parsers.

Primary path (fal's "fal_v3" repository): a CDN token from the REST API, then one ``POST
{cdn}/files/upload`` or, above the multipart threshold, initiate / part PUTs / complete. Fallback path:
``POST {rest}/storage/upload/initiate`` then a PUT to the presigned URL it returns. The presigned PUT
carries **no** ``Authorization`` header: the URL is its own credential, and fal's own client leaking the
API key to a storage host is exactly what must not be copied.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from airflow_provider_kling.exceptions import KlingError
from airflow_provider_kling.protocol import errors, redact
from airflow_provider_kling.protocol.config import FalSettings
from airflow_provider_kling.protocol.headers import anonymous_headers, auth_headers

MULTIPART_THRESHOLD = 100 * 1024 * 1024
PART_SIZE = 10 * 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
DEFAULT_FILE_NAME = "upload.bin"
# A token that expires within this margin is renewed first, so an upload never starts with a token
# that dies halfway through.
TOKEN_RENEW_MARGIN = timedelta(seconds=60)

Content = bytes | Iterable[bytes]


def guess_content_type(file_name: str | None) -> str:
    """MIME type from the file name (``clip.mp4`` → ``video/mp4``), else ``application/octet-stream``."""
    if file_name:
        guessed, _ = mimetypes.guess_type(file_name, strict=False)
        if guessed:
            return guessed
    return DEFAULT_CONTENT_TYPE


def parse_expiry(value: Any) -> datetime | None:
    """``expires_at`` as an aware datetime (accepts ``Z`` and naive UTC values); None if unusable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class CdnToken:
    """A CDN upload token.

    :param token: the bearer token (sent to the CDN only).
    :param token_type: the auth scheme, e.g. ``Bearer``.
    :param base_url: CDN root for multipart uploads.
    :param expires_at: when it stops working; None means "use once, do not cache".
    """

    token: str = field(repr=False)
    token_type: str
    base_url: str
    expires_at: datetime | None

    def usable(self, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        now = now or datetime.now(timezone.utc)
        return now + TOKEN_RENEW_MARGIN < self.expires_at

    @property
    def authorization(self) -> str:
        return f"{self.token_type} {self.token}"


class UploadProtocol:
    """Builds storage requests and parses their answers.

    :param settings: resolved connection settings (REST and CDN URLs, key).
    """

    def __init__(self, settings: FalSettings) -> None:
        self.settings = settings

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.settings.key,) if self.settings.key else ()

    def _fail(self, response: httpx.Response, step: str) -> KlingError:
        return redact.error(
            errors.error_from_response(response, operation=f"upload ({step})", secrets=self.secrets),
            self.secrets,
        )

    def _missing(self, step: str, what: str) -> KlingError:
        return errors.protocol_error(f"the answer has no {what}", operation=f"upload ({step})")

    def _cdn_headers(self, token: CdnToken, content_type: str, file_name: str | None) -> dict[str, str]:
        headers = {**anonymous_headers(), "Authorization": token.authorization, "Content-Type": content_type}
        if file_name:
            headers["X-Fal-File-Name"] = file_name
        return headers

    # -- CDN token ------------------------------------------------------------------------------
    def token_request(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            f"{self.settings.rest_url}/storage/auth/token",
            params={"storage_type": "fal-cdn-v3"},
            headers={**auth_headers(self.settings.key), "Accept": "application/json"},
            json={},
        )

    def parse_token(self, response: httpx.Response) -> CdnToken:
        if not response.is_success:
            raise self._fail(response, "storage token")
        body = errors.json_object(response)
        if not body or not isinstance(body.get("token"), str):
            raise self._missing("storage token", "token")
        return CdnToken(
            token=body["token"],
            token_type=str(body.get("token_type") or "Bearer"),
            base_url=str(body.get("base_url") or self.settings.cdn_url).rstrip("/"),
            expires_at=parse_expiry(body.get("expires_at")),
        )

    # -- single upload --------------------------------------------------------------------------
    def single_upload_request(
        self, token: CdnToken, content: Content, *, size: int, content_type: str, file_name: str | None
    ) -> httpx.Request:
        # fal-client posts single uploads to the configured CDN, not to token.base_url.
        headers = {**self._cdn_headers(token, content_type, file_name), "Content-Length": str(size)}
        return httpx.Request(
            "POST", f"{self.settings.cdn_url}/files/upload", headers=headers, content=content
        )

    def parse_access_url(self, response: httpx.Response, step: str) -> str:
        if not response.is_success:
            raise self._fail(response, step)
        body = errors.json_object(response)
        if not body or not isinstance(body.get("access_url"), str):
            raise self._missing(step, "access_url")
        return body["access_url"]

    # -- multipart ------------------------------------------------------------------------------
    def multipart_initiate_request(
        self, token: CdnToken, *, content_type: str, file_name: str | None
    ) -> httpx.Request:
        headers = {
            **self._cdn_headers(token, content_type, file_name or DEFAULT_FILE_NAME),
            "Accept": "application/json",
        }
        return httpx.Request("POST", f"{token.base_url}/files/upload/multipart", headers=headers)

    def parse_multipart_initiate(self, response: httpx.Response) -> tuple[str, str]:
        """``(access_url, upload_id)``."""
        access_url = self.parse_access_url(response, "multipart initiate")
        body = errors.json_object(response) or {}
        upload_id = body.get("uploadId") or body.get("upload_id")
        if not isinstance(upload_id, str) or not upload_id:
            raise self._missing("multipart initiate", "uploadId")
        return access_url, upload_id

    def multipart_part_request(
        self,
        token: CdnToken,
        access_url: str,
        upload_id: str,
        part_number: int,
        data: bytes,
        *,
        content_type: str,
    ) -> httpx.Request:
        headers = {
            **self._cdn_headers(token, content_type, None),
            # The ETag must describe the bytes as sent, so no transparent compression.
            "Accept-Encoding": "identity",
        }
        return httpx.Request(
            "PUT", f"{access_url}/multipart/{upload_id}/{part_number}", headers=headers, content=data
        )

    def parse_part(self, response: httpx.Response, part_number: int) -> str:
        """The part's ETag, needed by the complete call."""
        if not response.is_success:
            raise self._fail(response, f"part {part_number}")
        etag = response.headers.get("etag")
        if not etag:
            raise self._missing(f"part {part_number}", "ETag header")
        return etag

    def multipart_complete_request(
        self, token: CdnToken, access_url: str, upload_id: str, parts: list[dict[str, Any]]
    ) -> httpx.Request:
        headers = {**anonymous_headers(), "Authorization": token.authorization, "Accept": "application/json"}
        return httpx.Request(
            "POST", f"{access_url}/multipart/{upload_id}/complete", headers=headers, json={"parts": parts}
        )

    def parse_complete(self, response: httpx.Response, access_url: str) -> str:
        if not response.is_success:
            raise self._fail(response, "multipart complete")
        # Like fal-client: the file lives at the access URL handed out by initiate.
        return access_url

    # -- fallback: initiate + presigned PUT ----------------------------------------------------
    def initiate_request(self, *, content_type: str, file_name: str | None) -> httpx.Request:
        return httpx.Request(
            "POST",
            f"{self.settings.rest_url}/storage/upload/initiate",
            params={"storage_type": "gcs"},
            headers={**auth_headers(self.settings.key), "Accept": "application/json"},
            json={"file_name": file_name or DEFAULT_FILE_NAME, "content_type": content_type},
        )

    def parse_initiate(self, response: httpx.Response) -> tuple[str, str]:
        """``(upload_url, file_url)``."""
        if not response.is_success:
            raise self._fail(response, "initiate")
        body = errors.json_object(response) or {}
        upload_url, file_url = body.get("upload_url"), body.get("file_url")
        if not isinstance(upload_url, str) or not isinstance(file_url, str):
            raise self._missing("initiate", "upload_url / file_url")
        return upload_url, file_url

    def presigned_put_request(
        self, upload_url: str, content: Content, *, size: int, content_type: str
    ) -> httpx.Request:
        # Deliberately built from anonymous_headers(): the presigned URL must never see the fal key.
        headers = {**anonymous_headers(), "Content-Type": content_type, "Content-Length": str(size)}
        return httpx.Request("PUT", upload_url, headers=headers, content=content)

    def check_presigned(self, response: httpx.Response) -> None:
        if not response.is_success:
            raise self._fail(response, "presigned PUT")
