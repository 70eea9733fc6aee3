"""Sensor that waits for an already submitted fal request (e.g. from ``wait_for_completion=False``).

Because it only reads an existing request, the sensor is naturally idempotent across retries: it
never submits, so it can never pay twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_kling.exceptions import KlingConfigurationError, KlingError, KlingTimeoutError
from airflow_provider_kling.lifecycle import xcom
from airflow_provider_kling.lifecycle.outcome import fetch_result, raise_job_failure, validate_event
from airflow_provider_kling.lifecycle.output import output_from_result
from airflow_provider_kling.lifecycle.progress import ProgressReporter
from airflow_provider_kling.links.kling import FalRequestLink, KlingVideoLink
from airflow_provider_kling.protocol.polling import DEFAULT_POLL_INTERVAL
from airflow_provider_kling.protocol.status import wait_outcome

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1's task SDK does not export it
    from airflow.configuration import conf  # type: ignore[no-redef,assignment]

try:
    from airflow.sdk.exceptions import AirflowSensorTimeout
except ImportError:  # Airflow 3.1 keeps it in airflow.exceptions
    from airflow.exceptions import AirflowSensorTimeout  # type: ignore[no-redef,attr-defined]

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_kling.hooks.kling import KlingHook
    from airflow_provider_kling.protocol.types import FalRequest


# AirflowException.status_code (an HTTP status for API errors) and KlingError.status_code (the fal
# response's, None here) only clash in name; nothing reads a task exception's status_code.
class KlingSensorTimeoutError(AirflowSensorTimeout, KlingTimeoutError):  # type: ignore[misc]
    """The sensor's ``timeout`` passed while it waited in the triggerer.

    An ``AirflowSensorTimeout``, so ``soft_fail`` / ``never_fail`` and "no retries after a sensor
    timeout" apply exactly as in poke mode; and a :class:`KlingTimeoutError` for code that catches
    the provider's errors.

    :param message: what timed out; says that the request was not cancelled.
    """


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
        kwargs.setdefault("poke_interval", DEFAULT_POLL_INTERVAL)
        super().__init__(**kwargs)
        self.request_id = request_id
        self.endpoint_id = endpoint_id
        self.fal_conn_id = fal_conn_id
        self.deferrable = deferrable
        self.use_sse = use_sse
        self._progress: ProgressReporter | None = None
        # Link targets pushed by this process (read by the extra links at the end of the try).
        setattr(self, xcom.PUSHED_LINKS_ATTR, {})

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

    @xcom.records_failure
    def execute(self, context: Context) -> Any:
        request = self.request
        xcom.push_request_xcoms(context, self.hook, request, self.log)
        if not self.deferrable:
            return super().execute(context)
        # Already finished? Then there is nothing to defer for.
        done = self.poke(context)
        if isinstance(done, PokeReturnValue) and done.is_done:
            return done.xcom_value
        # Only a deferring task needs the trigger module (and Airflow's trigger base it imports).
        from airflow_provider_kling.triggers.kling import KlingRequestTrigger

        trigger = KlingRequestTrigger.for_request(
            request,
            fal_conn_id=self.fal_conn_id,
            poll_interval=float(self.poke_interval),
            timeout=float(self.timeout),
            use_sse=self.use_sse,
        )
        trigger.log_deferral(self.log)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=trigger.defer_timeout())

    def poke(self, context: Context) -> bool | PokeReturnValue:
        request = self.request
        if self._progress is None:
            self._progress = ProgressReporter(self.log, request.request_id)
        status = self.hook.get_status(request, logs=True)
        self._progress.update(status)
        outcome = wait_outcome(status)
        if outcome == "waiting":
            return False
        if outcome == "failed":
            raise_job_failure(self.hook, request, status.error, status.error_type)
        return PokeReturnValue(is_done=True, xcom_value=self._complete(context, request))

    @xcom.records_failure
    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: fetch the result in the worker or fail with fal's error."""
        event = validate_event(event)
        request = self.hook.request_from_id(
            str(event.get("endpoint_id") or self.endpoint_id), event["request_id"]
        )
        xcom.remember_dashboard_link(context, self.hook, request, self.log)
        if event["status"] == "timeout":
            raise KlingSensorTimeoutError(
                f"{event.get('message')} (the sensor timed out; the request was not cancelled)",
                request_id=request.request_id,
            )
        if event["status"] == "error":
            if event.get("source") == "job":
                raise_job_failure(self.hook, request, event.get("message"), event.get("error_type"))
            raise KlingError(str(event.get("message")), request_id=request.request_id)
        return self._complete(context, request)

    def _complete(self, context: Context, request: FalRequest) -> dict[str, Any]:
        output = output_from_result(request, fetch_result(self.hook, request))
        xcom.publish_output(context, output, self.outlets)
        self.log.info("Video ready: %s (fal request %s)", output["video_url"], request.request_id)
        return output
