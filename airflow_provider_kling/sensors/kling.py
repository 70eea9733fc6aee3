"""Sensor that waits for an already submitted fal request (e.g. from ``wait_for_completion=False``).

Because it only reads an existing request, the sensor is naturally idempotent across retries: it
never submits, so it can never pay twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_kling.exceptions import KlingConfigurationError, KlingError, KlingRequestFailedError
from airflow_provider_kling.links.kling import FalRequestLink, KlingVideoLink
from airflow_provider_kling.operators import _completion as completion
from airflow_provider_kling.operators._progress import ProgressReporter
from airflow_provider_kling.protocol.types import FalRequest
from airflow_provider_kling.triggers.kling import KlingRequestTrigger

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1's task SDK does not export it
    from airflow.configuration import conf  # type: ignore[no-redef,assignment]

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_kling.hooks.kling import KlingHook

_BACKSTOP_MARGIN = 60.0


class KlingRequestSensor(BaseSensorOperator):
    """Wait for a fal request to complete and return the same dict as the Kling operators.

    Typical use, after an operator run with ``wait_for_completion=False``::

        KlingRequestSensor(
            task_id="wait",
            request_id="{{ ti.xcom_pull('submit', key='request_id') }}",
            endpoint_id="fal-ai/kling-video/v1.6/standard/image-to-video",
        )

    A failed request fails the sensor with fal's error text. A sensor timeout does not cancel the
    request (the sensor did not submit it); ``duration`` and ``cost_estimate`` are None in its result.

    :param request_id: fal request id. Templated.
    :param endpoint_id: the endpoint id the request was submitted to. Templated.
    :param fal_conn_id: Airflow connection of type ``fal``. Templated.
    :param deferrable: wait in the triggerer (reuses :class:`KlingRequestTrigger`).
    :param use_sse: in deferrable mode, follow fal's SSE status stream (polling fallback).
    """

    template_fields: Sequence[str] = ("request_id", "endpoint_id", "fal_conn_id")
    operator_extra_links = (KlingVideoLink(), FalRequestLink())
    ui_color = "#f3e8ff"

    def __init__(
        self,
        *,
        request_id: str,
        endpoint_id: str,
        fal_conn_id: str = "fal_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        use_sse: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 10.0)
        super().__init__(**kwargs)
        self.request_id = request_id
        self.endpoint_id = endpoint_id
        self.fal_conn_id = fal_conn_id
        self.deferrable = deferrable
        self.use_sse = use_sse
        self._progress: ProgressReporter | None = None

    @cached_property
    def hook(self) -> KlingHook:
        from airflow_provider_kling.hooks.kling import KlingHook

        return KlingHook(fal_conn_id=self.fal_conn_id)

    @cached_property
    def request(self) -> FalRequest:
        for name in ("request_id", "endpoint_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip() or value.strip() == "None":
                raise KlingConfigurationError(f"{name} must be a non-empty string, got {value!r}")
        return self.hook.request_from_id(self.endpoint_id.strip(), self.request_id.strip())

    def execute(self, context: Context) -> Any:
        request = self.request
        completion.push_request_xcoms(context, request, self._dashboard_url(request))
        if not self.deferrable:
            return super().execute(context)
        # Already finished? Then there is nothing to defer for.
        done = self.poke(context)
        if isinstance(done, PokeReturnValue) and done.is_done:
            return done.xcom_value
        self.defer(
            trigger=KlingRequestTrigger(
                fal_conn_id=self.fal_conn_id,
                request_id=request.request_id,
                endpoint_id=request.endpoint_id,
                status_url=request.status_url,
                response_url=request.response_url,
                cancel_url=request.cancel_url,
                poll_interval=float(self.poke_interval),
                end_time=time.time() + float(self.timeout),
                use_sse=self.use_sse,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + float(self.poke_interval) + _BACKSTOP_MARGIN),
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        request = self.request
        if self._progress is None:
            self._progress = ProgressReporter(self.log, request.request_id)
        status = self.hook.get_status(request, logs=True)
        self._progress.update(status)
        if not status.done:
            return False
        if status.failed:
            self._raise_failed(request, status.error, status.error_type)
        return PokeReturnValue(is_done=True, xcom_value=self._complete(context, request))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: fetch the result in the worker or fail with fal's error."""
        event = completion.validate_event(event)
        request = self.hook.request_from_id(
            str(event.get("endpoint_id") or self.endpoint_id), event["request_id"]
        )
        if event["status"] == "timeout":
            raise KlingError(f"{event.get('message')} (the sensor timed out; the request was not cancelled)")
        if event["status"] == "error":
            if event.get("source") == "job":
                self._raise_failed(request, event.get("message"), event.get("error_type"))
            raise KlingError(str(event.get("message")), request_id=request.request_id)
        return self._complete(context, request)

    def _raise_failed(self, request: FalRequest, message: Any, error_type: Any) -> None:
        # The result GET of a failed job carries fal's detailed error (e.g. the 422 field list);
        # the hook raises it as the matching KlingError subclass.
        self.hook.get_result(request)
        raise KlingRequestFailedError(
            str(message or f"fal request {request.request_id} failed"),
            request_id=request.request_id,
            error_type=error_type,
        )

    def _complete(self, context: Context, request: FalRequest) -> dict[str, Any]:
        output = completion.output_from_result(request, self.hook.get_result(request))
        completion.publish_output(context, output, self.outlets)
        self.log.info("Video ready: %s (fal request %s)", output["video_url"], request.request_id)
        return output

    def _dashboard_url(self, request: FalRequest) -> str | None:
        try:
            return self.hook.dashboard_url(request.request_id, request.endpoint_id)
        except Exception:
            self.log.warning("Could not build the fal dashboard link", exc_info=True)
            return None
