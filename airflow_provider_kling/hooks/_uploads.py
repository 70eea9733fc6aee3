"""The I/O half of ``KlingHook.upload_file``: fal's upload chain run over the hook's retrying sender.

Requests are built and answers parsed by :class:`~airflow_provider_kling.protocol.uploads.UploadProtocol`;
this module only decides the order: CDN token → single POST (or multipart above the threshold), and,
if anything on the CDN path fails, fal's initiate + presigned PUT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from airflow_provider_kling.exceptions import KlingError
from airflow_provider_kling.hooks._sources import UploadSource
from airflow_provider_kling.protocol import errors
from airflow_provider_kling.protocol.uploads import CdnToken, UploadProtocol

RequestFactory = Callable[[], httpx.Request]
#: ``send(request_or_factory, step)``: one storage call with retries; a factory is rebuilt per attempt
#: (a streamed body must be re-read from the start). Transport failures arrive as :class:`KlingError`.
StorageSend = Callable[[httpx.Request | RequestFactory, str], httpx.Response]


class FalUploader:
    """Uploads files to fal storage for one connection, caching the CDN token between uploads.

    :param storage: request builders and parsers for the connection's REST and CDN URLs.
    :param send: sends one storage call with the hook's retry policy (see :data:`StorageSend`).
    :param log: where the CDN → presigned fallback is reported (the hook's logger, whose type
        differs between Airflow's task SDK and stdlib ``logging``).
    """

    def __init__(self, storage: UploadProtocol, send: StorageSend, log: Any) -> None:
        self.storage = storage
        self._send = send
        self._log = log
        self._token: CdnToken | None = None

    def token(self, *, force: bool = False) -> CdnToken:
        """A CDN token: the cached one while it has more than a minute left, else a fresh one."""
        if force or self._token is None or not self._token.usable():
            self._token = self.storage.parse_token(self._send(self.storage.token_request(), "storage token"))
        return self._token

    def upload(self, src: UploadSource, mime: str, *, multipart_threshold: int, part_size: int) -> str:
        """The URL of ``src`` once stored: CDN first, presigned PUT if the CDN path fails."""
        try:
            return self._upload_cdn(src, mime, multipart_threshold=multipart_threshold, part_size=part_size)
        except KlingError as cdn_error:
            # The token may be why it failed (revoked, clock skew): never reuse it after a failure.
            self._token = None
            self._log.warning(
                "Upload to the fal CDN failed (%s); falling back to a presigned upload",
                errors.scrub(str(cdn_error), self.storage.secrets),
            )
            try:
                return self._upload_presigned(src, mime)
            except KlingError as error:
                raise error from cdn_error

    def _upload_cdn(self, src: UploadSource, mime: str, *, multipart_threshold: int, part_size: int) -> str:
        storage, token = self.storage, self.token()
        if src.size <= multipart_threshold:
            response = self._send(
                lambda: storage.single_upload_request(
                    token, src.content(), size=src.size, content_type=mime, file_name=src.name
                ),
                "single",
            )
            return storage.parse_access_url(response, "single")
        access_url, upload_id = storage.parse_multipart_initiate(
            self._send(
                storage.multipart_initiate_request(token, content_type=mime, file_name=src.name),
                "multipart initiate",
            )
        )
        parts = []
        # One part in memory at a time: a multi-GiB video is never held whole.
        for number, offset in enumerate(range(0, src.size, part_size), start=1):
            data = src.read_range(offset, min(part_size, src.size - offset))
            response = self._send(
                storage.multipart_part_request(token, access_url, upload_id, number, data, content_type=mime),
                f"part {number}",
            )
            parts.append({"partNumber": number, "etag": storage.parse_part(response, number)})
        response = self._send(
            storage.multipart_complete_request(token, access_url, upload_id, parts), "multipart complete"
        )
        return storage.parse_complete(response, access_url)

    def _upload_presigned(self, src: UploadSource, mime: str) -> str:
        storage = self.storage
        upload_url, file_url = storage.parse_initiate(
            self._send(storage.initiate_request(content_type=mime, file_name=src.name), "initiate")
        )
        response = self._send(
            lambda: storage.presigned_put_request(
                upload_url, src.content(), size=src.size, content_type=mime
            ),
            "presigned PUT",
        )
        storage.check_presigned(response)
        return file_url
