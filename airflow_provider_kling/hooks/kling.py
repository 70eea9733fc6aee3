"""``KlingHook``: fal.ai's queue API (submit, follow, fetch, cancel, upload) for Airflow.

The hook is a thin I/O shell: requests are built and answers parsed by
:mod:`airflow_provider_kling.protocol`, retries come from one shared :class:`RetryPolicy`. The sync
half (``httpx.Client``) serves workers; the async half (``httpx.AsyncClient``) serves the triggerer and
reads its connection only through ``aget_connection``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from types import TracebackType
from typing import IO, Any, TypeVar

import httpx

from airflow_provider_kling import metrics
from airflow_provider_kling.exceptions import (
    KlingAuthenticationError,
    KlingConfigurationError,
    KlingError,
    KlingRequestFailedError,
    KlingTimeoutError,
)
from airflow_provider_kling.hooks import _gc_freeze as gc_freeze
from airflow_provider_kling.hooks import _shared_client as shared
from airflow_provider_kling.hooks._masking import amask_key, mask_key
from airflow_provider_kling.hooks._sources import open_source
from airflow_provider_kling.hooks._uploads import FalUploader, RequestFactory
from airflow_provider_kling.protocol import errors
from airflow_provider_kling.protocol.config import (
    KEY_SOURCES_HINT,
    FalSettings,
    env_key_available,
    settings_from_connection,
)
from airflow_provider_kling.protocol.polling import DEFAULT_POLL_INTERVAL, PollSchedule, check_poll_interval
from airflow_provider_kling.protocol.queue import MalformedEventError, QueueCall, QueueProtocol
from airflow_provider_kling.protocol.retry import (
    CallKind,
    RetryPolicy,
    should_retry_exception,
    should_retry_response,
)
from airflow_provider_kling.protocol.status import wait_outcome
from airflow_provider_kling.protocol.types import CancelOutcome, FalRequest, RequestStatus
from airflow_provider_kling.protocol.uploads import (
    MULTIPART_THRESHOLD,
    PART_SIZE,
    UploadProtocol,
    guess_content_type,
)

try:
    from airflow.sdk import BaseHook
except ImportError:  # pragma: no cover - Airflow without the task SDK export
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined]

T = TypeVar("T")

# A refused key re-reads the connection only if the read is older than this (seconds): thousands of
# triggers refused at once after a rotation share one read instead of each making its own.
_REREAD_AFTER_AUTH_ERROR = 5.0


def _is_missing_connection(exc: Exception) -> bool:
    """Airflow's "conn_id isn't defined" (the class lives in a different module per Airflow version)."""
    return any(cls.__name__ == "AirflowNotFoundException" for cls in type(exc).__mro__)


class _StreamUnavailable(Exception):
    """The SSE status stream cannot be used (or broke); polling takes over."""


class KlingHook(BaseHook):
    """Talk to fal.ai's queue API (Kling video models and any other fal endpoint).

    Connection (type ``fal``): password = API key (``<key_id>:<key_secret>``; when empty, ``FAL_KEY`` or
    ``FAL_KEY_ID`` + ``FAL_KEY_SECRET`` from the environment, which also serve, with fal's default URLs,
    when no ``fal_default`` connection exists at all); host = queue URL (default
    ``https://queue.fal.run``; extra ``queue_url`` wins); extras ``rest_url``, ``cdn_url``,
    ``request_timeout`` (seconds, default 120), ``dashboard_url_template``, ``prices``, ``max_cost_usd``,
    ``max_connections`` (the triggerer's shared poll pool, default 100) and ``keepalive_expiry``
    (seconds an idle pooled connection stays open, default 60).

    :param fal_conn_id: the ``fal`` connection to use.
    :param timeout: read timeout of each HTTP call in seconds (overrides the ``request_timeout`` extra).
    :param retry_policy: retry/back-off policy of every call (defaults to :attr:`default_retry_policy`).
    :param shared_client: async calls use the client shared by every hook on the running event loop
        (one per connection settings, closed when the loop ends) and the connection read shared with
        them (re-read every :data:`~airflow_provider_kling.hooks._shared_client.CONNECTION_TTL`
        seconds); what the triggerer's Kling triggers use. ``aclose`` then leaves the client open.
    """

    conn_name_attr = "fal_conn_id"
    default_conn_name = "fal_default"
    conn_type = "fal"
    hook_name = "fal.ai (Kling)"

    default_retry_policy = RetryPolicy()
    #: Files larger than this are uploaded in parts (fal-client's threshold); overridable per instance.
    multipart_threshold: int = MULTIPART_THRESHOLD
    #: Size of one multipart part.
    multipart_part_size: int = PART_SIZE

    def __init__(
        self,
        fal_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        retry_policy: RetryPolicy | None = None,
        shared_client: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.fal_conn_id = fal_conn_id
        self.timeout = timeout
        self.retry_policy = retry_policy or self.default_retry_policy
        self.shared_client = shared_client
        if shared_client:
            # A trigger is starting: keep the triggerer's long-lived objects out of full collections.
            gc_freeze.note_follower()
        self._settings: FalSettings | None = None
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._uploader: FalUploader | None = None
        self._queue_protocol: QueueProtocol | None = None
        self._last_status_call: tuple[QueueProtocol, FalRequest, bool, QueueCall[RequestStatus]] | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form for Airflow < 3.2 (3.2+ reads ``ui-field-behaviour`` from provider info)."""
        return {
            "hidden_fields": ["login", "schema", "port"],
            "relabeling": {"password": "API Key", "host": "Queue URL"},
            "placeholders": {"host": "https://queue.fal.run", "password": "<key_id>:<key_secret>"},
        }

    # -- connection -----------------------------------------------------------------------------
    def _build_settings(self, conn: Any) -> FalSettings:
        return settings_from_connection(
            host=conn.host,
            port=conn.port,
            password=conn.password,
            # The raw text, parsed by the protocol core: the same on both paths, and no sync
            # extra_dejson call that could block the triggerer's event loop.
            extra=conn.extra,
            environ=os.environ,
            timeout=self.timeout,
        )

    def _settings_without_connection(self, missing: Exception) -> FalSettings:
        """The connection does not exist. For the default connection only, fal's own convention
        applies: the key comes from ``FAL_KEY`` (or ``FAL_KEY_ID`` + ``FAL_KEY_SECRET``) with fal's
        default URLs. A misspelt custom conn id must not silently fall back to another account's key."""
        if self.fal_conn_id != self.default_conn_name:
            raise missing
        if not env_key_available(os.environ):
            raise KlingConfigurationError(
                f"The connection {self.fal_conn_id!r} is not defined and no fal key is in the environment: "
                f"create the connection (type 'fal', API Key '<key_id>:<key_secret>'), or {KEY_SOURCES_HINT}"
            ) from None
        settings = settings_from_connection(
            host=None, port=None, password=None, extra=None, environ=os.environ, timeout=self.timeout
        )
        self.log.info(
            "Connection %r is not defined: using the fal key from %s in the environment and fal's "
            "default URLs (%s)",
            self.fal_conn_id,
            settings.key_source,
            settings.queue_url,
        )
        return settings

    def _settings_from(self, read: Any) -> FalSettings:
        """The connection's settings, or fal's environment key when it does not exist: the choice
        both halves make. ``read`` is the connection, or the exception that reading it raised."""
        if not isinstance(read, Exception):
            return self._build_settings(read)
        if not _is_missing_connection(read):
            raise read
        return self._settings_without_connection(read)

    @property
    def settings(self) -> FalSettings:
        """The resolved connection (read once per hook instance)."""
        if self._settings is None:
            try:
                read: Any = self.get_connection(self.fal_conn_id)
            except Exception as exc:
                read = exc
            settings = self._settings_from(read)
            mask_key(settings.key)
            self._settings = settings
        return self._settings

    async def _aload_settings(self) -> FalSettings:
        try:
            read: Any = await self.aget_connection(self.fal_conn_id)
        except Exception as exc:
            read = exc
        settings = self._settings_from(read)
        await amask_key(settings.key)
        return settings

    async def _asettings(self) -> FalSettings:
        if self.shared_client:
            # Per-hook timeout overrides make settings of their own: only plain hooks share the read.
            if self.timeout is None:
                self._settings = await shared.shared_settings(self.fal_conn_id, self._aload_settings)
            elif self._settings is None:
                self._settings = await self._aload_settings()
        elif self._settings is None:
            self._settings = await self._aload_settings()
        return self._settings

    def _timeout(self, settings: FalSettings) -> httpx.Timeout:
        return httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout)

    @property
    def _queue(self) -> QueueProtocol:
        return QueueProtocol(self.settings)

    @property
    def prices(self) -> dict[str, Any]:
        """Price overrides from the connection extra ``prices`` (``{}`` when there are none)."""
        return dict(self.settings.prices)

    def dashboard_url(self, request_id: str, endpoint_id: str) -> str | None:
        """The fal dashboard page of a request, from the ``dashboard_url_template`` extra."""
        template = self.settings.dashboard_url_template
        try:
            return template.format(request_id=request_id, endpoint_id=endpoint_id)
        except (KeyError, IndexError, ValueError) as exc:
            raise KlingConfigurationError(
                f"Connection extra 'dashboard_url_template' {template!r} is invalid: only {{request_id}} and "
                f"{{endpoint_id}} may be used ({type(exc).__name__}: {exc})"
            ) from None

    # -- sync transport -------------------------------------------------------------------------
    def get_conn(self) -> httpx.Client:
        """The hook's pooled ``httpx.Client`` (created on first use)."""
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout(self.settings))
        return self._client

    def _send(
        self, request: httpx.Request | RequestFactory, *, kind: CallKind = "idempotent", label: str
    ) -> httpx.Response:
        """Send with retries; returns the last response (any status) or raises the last httpx error."""
        client = self.get_conn()
        build: RequestFactory = request if callable(request) else (lambda: request)
        return self.retry_policy.retrying(kind, label)(lambda: client.send(build()))

    def _respond(self, call: QueueCall[Any]) -> httpx.Response:
        """The call's final response (after retries), any status; transport failures mapped."""
        try:
            return self._send(call.request, kind=call.kind, label=call.label)
        except httpx.HTTPError as exc:
            raise call.transport_failure(exc) from exc

    def _run(self, call: QueueCall[T]) -> T:
        return call.finish(self._respond(call))

    # -- queue (sync) ---------------------------------------------------------------------------
    def submit(
        self,
        endpoint_id: str,
        arguments: dict[str, Any],
        *,
        webhook_url: str | None = None,
        priority: str | None = None,
        start_timeout: float | None = None,
    ) -> FalRequest:
        """Queue one request; never sent twice unless fal provably did not receive it.

        :param endpoint_id: e.g. ``fal-ai/kling-video/v1.6/standard/image-to-video``.
        :param arguments: the model input, sent as JSON.
        :param webhook_url: fal POSTs the outcome there (``fal_webhook``).
        :param priority: ``normal`` or ``low``.
        :param start_timeout: seconds (> 1) the request may wait to *start* before fal gives up.
        :raises KlingSubmitUncertainError: when fal may have created the job but the answer was lost.
        """
        queue = self._queue
        request = queue.submit_request(
            endpoint_id, arguments, webhook_url=webhook_url, priority=priority, start_timeout=start_timeout
        )
        try:
            response = self._send(request, kind="submit", label=f"submit to {endpoint_id}")
        except httpx.HTTPError as exc:
            raise queue.submit_transport_failure(exc, endpoint_id) from exc
        handle = queue.parse_submit(response, endpoint_id)
        self.log.info("Submitted fal request %s to %s", handle.request_id, handle.endpoint_id)
        return handle

    def request_from_id(self, endpoint_id: str, request_id: str) -> FalRequest:
        """Rebuild a handle from a request id (URLs derived from owner/alias; prefer stored handles)."""
        return self._queue.request_from_id(endpoint_id, request_id)

    def get_status(self, request: FalRequest, *, logs: bool = True) -> RequestStatus:
        """One status poll. Logs are a sliding window: dedupe them with :class:`LogDeduper`."""
        return self._run(self._queue.status_call(request, logs=logs))

    def get_result(self, request: FalRequest, *, status: RequestStatus | None = None) -> dict[str, Any]:
        """The output of a COMPLETED request; a failed job raises its mapped error.

        :param status: the COMPLETED status seen before, if any: when it carries no ``error``, a 5xx,
            gateway page or malformed body is retried and, if it persists, raised as
            :class:`KlingServerError` saying fal's answer was unclear (never as a failed job).
        """
        return self._run(self._queue.result_call(request, status=status))

    def cancel(self, request: FalRequest) -> CancelOutcome:
        """Ask fal to cancel; returns CANCELLATION_REQUESTED, ALREADY_COMPLETED or NOT_FOUND."""
        outcome = self._run(self._queue.cancel_call(request))
        self.log.info("Cancel of fal request %s: %s", request.request_id, outcome)
        metrics.cancelled(request.endpoint_id)
        return outcome

    def wait(
        self,
        request: FalRequest,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = None,
        on_update: Callable[[RequestStatus], Any] | None = None,
    ) -> dict[str, Any]:
        """Poll until COMPLETED and return the result (fal-client's ``subscribe``).

        :param poll_interval: seconds between polls.
        :param timeout: overall deadline in seconds; on expiry the request is cancelled (best effort)
            and :class:`KlingTimeoutError` is raised.
        :param on_update: called with every :class:`RequestStatus`, the final one included. Without
            one, the hook logs each state change itself; with one, reporting is the caller's.
        """
        poll_interval = check_poll_interval(poll_interval)
        if timeout is not None and timeout <= 0:
            raise KlingConfigurationError(f"timeout must be > 0 seconds, got {timeout!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        last_state = None
        while True:
            status = self.get_status(request, logs=True)
            if on_update is not None:
                on_update(status)
            elif status.status != last_state:
                self.log.info("fal request %s is %s", request.request_id, status.status)
                last_state = status.status
            outcome = wait_outcome(status)
            if outcome != "waiting":
                result = self.get_result(request, status=status)
                if outcome == "failed":
                    # fal answers a failed job's result GET with its error, which get_result raises;
                    # a 200 there would be a protocol oddity, and must still not pass as a success.
                    raise KlingRequestFailedError(
                        status.error or f"fal request {request.request_id} failed",
                        request_id=request.request_id,
                        error_type=status.error_type,
                    )
                return result
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                cancelled = self._cancel_quietly(request)
                raise KlingTimeoutError(
                    f"fal request {request.request_id} of {request.endpoint_id} did not complete within "
                    f"{timeout:g} s (last status {status.status}); cancellation of fal request "
                    f"{request.request_id} requested ({cancelled})",
                    request_id=request.request_id,
                )
            time.sleep(poll_interval if remaining is None else min(poll_interval, remaining))

    def _cancel_quietly(self, request: FalRequest) -> str:
        try:
            return self.cancel(request)
        except KlingError as exc:
            self.log.warning("Could not cancel fal request %s: %s", request.request_id, exc)
            return f"failed ({type(exc).__name__})"

    # -- uploads --------------------------------------------------------------------------------
    def upload_file(
        self,
        source: str | os.PathLike[str] | bytes | IO[bytes],
        *,
        content_type: str | None = None,
        file_name: str | None = None,
    ) -> str:
        """Upload a file to fal storage and return its URL (usable as a model input).

        CDN first (single POST, or multipart above :attr:`multipart_threshold`); if that fails, fal's
        initiate + presigned PUT (the fal key is never sent to the presigned URL).

        :param source: a path, the bytes, or a binary file object (read from its current position).
        :param content_type: MIME type; guessed from the file name when omitted.
        :param file_name: name to store (defaults to the path's / file object's name).
        """
        # Resolves the connection first: a missing key fails here, before anything is read or sent.
        uploader = self._uploads()
        with open_source(source, file_name=file_name) as src:
            mime = content_type or guess_content_type(src.name)
            url = uploader.upload(
                src, mime, multipart_threshold=self.multipart_threshold, part_size=self.multipart_part_size
            )
        self.log.info("Uploaded %s (%d bytes, %s) to %s", src.name or "data", src.size, mime, url)
        return url

    def _uploads(self) -> FalUploader:
        """The hook's uploader (one per hook, so the CDN token is reused across uploads)."""
        if self._uploader is None:
            self._uploader = FalUploader(UploadProtocol(self.settings), self._storage_call, self.log)
        return self._uploader

    def _storage_call(self, request: httpx.Request | RequestFactory, step: str) -> httpx.Response:
        try:
            return self._send(request, label=f"upload ({step})")
        except httpx.HTTPError as exc:
            raise errors.transport_error(
                exc, operation=f"upload ({step})", secrets=(self.settings.key,)
            ) from exc

    def test_connection(self) -> tuple[bool, str]:
        """For the UI's Test button: an authenticated CDN-token request plus a reachability probe of the
        queue (no job is created, nothing is billed)."""
        try:
            settings = self.settings
            self._uploads().token(force=True)
            # A status GET of a request id that cannot exist: a 404 proves the queue answers and
            # accepted the key, and it creates no job.
            probe = self.request_from_id("fal-ai/kling-video", "00000000-0000-0000-0000-000000000000")
            response = self._respond(self._queue.status_call(probe, logs=False))
            if response.status_code in (401, 403) or response.status_code >= 500:
                raise self._queue.http_error(response, "status", probe)
        except Exception as exc:
            secrets = (self._settings.key,) if self._settings else ()
            return False, errors.scrub(f"{type(exc).__name__}: {exc}", secrets)
        return True, (
            f"Connected to fal: the API key (from {settings.key_source}) was accepted by {settings.rest_url} "
            f"and the queue at {settings.queue_url} answered."
        )

    # -- async ----------------------------------------------------------------------------------
    async def _asend(self, request: httpx.Request) -> httpx.Response:
        """One HTTP exchange (body read) on the shared client or the hook's own."""
        if self.shared_client:
            client = await shared.shared_client(await self._asettings())
            return await client.send(request)
        return await (await self._aget_client()).send(request)

    async def _aget_client(self) -> httpx.AsyncClient:
        if self._aclient is None:
            settings = await self._asettings()
            # Building the TLS context reads the CA bundle (~20 ms of file I/O): done in a thread, so the
            # triggerer's loop, shared by every deferred task, never stalls on it.
            ssl_context = await asyncio.to_thread(httpx.create_ssl_context)
            if self._aclient is None:  # another coroutine may have won the race while we waited
                self._aclient = httpx.AsyncClient(timeout=self._timeout(settings), verify=ssl_context)
        return self._aclient

    async def _aqueue(self) -> QueueProtocol:
        settings = await self._asettings()
        # One protocol object per settings value: a poll does not rebuild it (nor its headers).
        if self._queue_protocol is None or self._queue_protocol.settings is not settings:
            self._queue_protocol = QueueProtocol(settings)
        return self._queue_protocol

    async def _arun(self, call: QueueCall[T]) -> T:
        # The first attempt runs outside tenacity: an answer that needs no retry (nearly every poll)
        # then costs no retry controller, whose objects form reference cycles that only the garbage
        # collector frees (~30 per call: the triggerer's main source of collections when polling).
        # Anything worth a retry is handed to the policy as its first attempt, so attempts, back-off
        # and the time budget are exactly the policy's.
        started = time.monotonic()
        try:
            first: httpx.Response | httpx.HTTPError
            try:
                first = await self._asend(call.request)
            except httpx.HTTPError as exc:
                if not should_retry_exception(exc, kind=call.kind, request=call.request):
                    raise
                first = exc
            if isinstance(first, httpx.Response) and not should_retry_response(first, kind=call.kind):
                response = first
            elif self.retry_policy.max_attempts <= 1:
                if isinstance(first, httpx.HTTPError):
                    raise first
                response = first
            else:
                replay = [first]

                async def attempt(request: httpx.Request) -> httpx.Response:
                    if replay:
                        outcome = replay.pop()
                        if isinstance(outcome, httpx.HTTPError):
                            raise outcome
                        return outcome
                    return await self._asend(request)

                retrying = self.retry_policy.async_retrying(
                    call.kind, call.label, spent=time.monotonic() - started
                )
                response = await retrying(attempt, call.request)
        except httpx.HTTPError as exc:
            raise call.transport_failure(exc) from exc
        return call.finish(response)

    async def _acall(self, build: Callable[[QueueProtocol], QueueCall[T]]) -> T:
        """Run the call ``build`` makes; with the shared connection read, a refused key makes it
        re-read the connection once and, if the key changed (rotation), try again with the new one."""
        queue = await self._aqueue()
        try:
            return await self._arun(build(queue))
        except KlingAuthenticationError:
            if not self.shared_client or self.timeout is not None:
                raise
            shared.forget_settings(self.fal_conn_id, older_than=_REREAD_AFTER_AUTH_ERROR)
            fresh = await self._aqueue()
            if fresh.settings.key == queue.settings.key:
                raise
            self.log.info("The key of connection %s changed; retrying with the new key", self.fal_conn_id)
            return await self._arun(build(fresh))

    async def aget_status(self, request: FalRequest, *, logs: bool = True) -> RequestStatus:
        """Async :meth:`get_status`."""
        return await self._acall(lambda queue: self._status_call(queue, request, logs))

    def _status_call(self, queue: QueueProtocol, request: FalRequest, logs: bool) -> QueueCall[RequestStatus]:
        # A trigger polls one request with one hook: the call (its URL parsed, headers built) is
        # made once and sent again (a GET without a body can be), until the settings change.
        cached = self._last_status_call
        if cached is not None and cached[0] is queue and cached[1] == request and cached[2] is logs:
            return cached[3]
        call = queue.status_call(request, logs=logs)
        self._last_status_call = (queue, request, logs, call)
        return call

    async def aget_result(
        self, request: FalRequest, *, status: RequestStatus | None = None
    ) -> dict[str, Any]:
        """Async :meth:`get_result`."""
        return await self._acall(lambda queue: queue.result_call(request, status=status))

    async def acancel(self, request: FalRequest) -> CancelOutcome:
        """Async :meth:`cancel`."""
        outcome = await self._acall(lambda queue: queue.cancel_call(request))
        self.log.info("Cancel of fal request %s: %s", request.request_id, outcome)
        metrics.cancelled(request.endpoint_id)
        return outcome

    async def astream_status(
        self,
        request: FalRequest,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        use_sse: bool = True,
        logs: bool = True,
        spread_start: bool = False,
    ) -> AsyncIterator[RequestStatus]:
        """Statuses until COMPLETED (the last item): from fal's SSE status stream, or by polling when
        the stream is unavailable or breaks.

        Polls follow a :class:`~airflow_provider_kling.protocol.polling.PollSchedule`: never closer
        together than ``poll_interval`` seconds, further apart while the queue position stands still
        and in the first minute of a job's run.

        Items are what fal sent: logs may repeat across items (a polled window slides, a stream may
        resend), so consumers that print logs should pass them through :class:`LogDeduper`.

        :param spread_start: wait a random part of ``poll_interval`` before the first poll, so many
            followers started together (a triggerer restart) do not poll in lock-step.
        """
        poll_interval = check_poll_interval(poll_interval)
        if use_sse:
            try:
                async with aclosing(self._asse(request, logs=logs)) as stream:
                    async for status in stream:
                        yield status
                        if wait_outcome(status) != "waiting":
                            return
                reason = "the stream ended before COMPLETED"
            except _StreamUnavailable as exc:
                reason = str(exc)
            self.log.info(
                "fal status stream of %s unavailable (%s); polling every %s s",
                request.request_id,
                reason,
                poll_interval,
            )
        schedule = PollSchedule(poll_interval)
        if spread_start:
            await asyncio.sleep(schedule.first_delay())
        noted = not self.shared_client
        while True:
            status = await self.aget_status(request, logs=logs)
            yield status
            if not noted:
                noted = True
                gc_freeze.note_follower()  # the first status is handled: what follows the job exists
            if wait_outcome(status) != "waiting":
                return
            await asyncio.sleep(schedule.next_delay(status))

    async def _asse(self, request: FalRequest, *, logs: bool) -> AsyncGenerator[RequestStatus, None]:
        queue = await self._aqueue()
        stream_request = queue.status_stream_request(request, logs=logs)
        if self.shared_client:
            client = await shared.shared_client(queue.settings)
            try:
                async with client.event_stream(stream_request) as stream:
                    assert stream.response is not None
                    self._check_stream(stream.response)
                    noted = False
                    try:
                        async for data in stream:
                            if data.strip():  # empty events are skipped
                                yield queue.parse_status_event(data, request)
                                if not noted:
                                    noted = True
                                    # The first event is handled: what follows the job exists now.
                                    gc_freeze.note_follower()
                    except (httpx.HTTPError, MalformedEventError) as exc:
                        raise _StreamUnavailable(f"the stream broke: {type(exc).__name__}") from exc
            except shared.StreamsUnavailable as exc:
                raise _StreamUnavailable(str(exc)) from exc
            except httpx.HTTPError as exc:
                raise _StreamUnavailable(f"{type(exc).__name__}: {exc}") from exc
            return
        try:
            response = await (await self._aget_client()).send(stream_request, stream=True)
        except httpx.HTTPError as exc:
            raise _StreamUnavailable(f"{type(exc).__name__}: {exc}") from exc
        try:
            async for status in self._read_stream(response, queue, request):
                yield status
        finally:
            await response.aclose()

    @staticmethod
    def _check_stream(response: httpx.Response) -> None:
        if not response.is_success:
            raise _StreamUnavailable(f"HTTP {response.status_code}")
        content_type = response.headers.get("content-type", "").partition(";")[0].strip()
        if content_type != "text/event-stream":
            raise _StreamUnavailable(f"content type {content_type or 'missing'!r}")

    async def _read_stream(
        self, response: httpx.Response, queue: QueueProtocol, request: FalRequest
    ) -> AsyncGenerator[RequestStatus, None]:
        try:
            self._check_stream(response)
            async for data in shared.event_data(response):
                if data.strip():  # keep-alive comments never reach here; empty events are skipped
                    yield queue.parse_status_event(data, request)
        except (httpx.HTTPError, MalformedEventError) as exc:
            raise _StreamUnavailable(f"the stream broke: {type(exc).__name__}") from exc

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the sync HTTP client (idempotent)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close the async HTTP client (idempotent); a shared client stays open for the others."""
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None

    def __enter__(self) -> KlingHook:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> KlingHook:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
