"""The generic Kling operator: any endpoint id and its arguments in, the video's URL out.

It validates locally, uploads local files, submits once, and waits in the worker (sync) or in the
triggerer (``deferrable=True``). A retry follows the request the previous try paid for instead of
submitting again (see :mod:`airflow_provider_kling.lifecycle.reattach`). The typed operators
(:mod:`._typed`) subclass it; import all of them from :mod:`airflow_provider_kling.operators.kling`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseOperator

from airflow_provider_kling import metrics
from airflow_provider_kling.cost import CostBudget, effective_cap, parse_usd
from airflow_provider_kling.exceptions import (
    KlingConfigurationError,
    KlingError,
    KlingNotFoundError,
    KlingRequestFailedError,
    KlingSubmitUncertainError,
    KlingTimeoutError,
    KlingValidationError,
)
from airflow_provider_kling.lifecycle import xcom
from airflow_provider_kling.lifecycle.outcome import fetch_result, raise_job_failure, validate_event
from airflow_provider_kling.lifecycle.output import (
    cost_to_str,
    output_from_result,
    pending_output,
    requested_duration,
)
from airflow_provider_kling.lifecycle.progress import ProgressReporter
from airflow_provider_kling.lifecycle.reattach import (
    ReattachState,
    StoredRequest,
    SubmitInFlight,
    fingerprint,
    retry_coming,
)
from airflow_provider_kling.links.kling import FalRequestLink, KlingVideoLink
from airflow_provider_kling.operators import _webhook
from airflow_provider_kling.protocol.polling import DEFAULT_POLL_INTERVAL, check_poll_interval, check_seconds

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1's task SDK does not export it
    from airflow.configuration import conf  # type: ignore[no-redef,assignment]

try:
    from airflow.sdk.exceptions import TaskDeferralTimeout
except ImportError:  # Airflow 3.1 keeps it in airflow.exceptions
    from airflow.exceptions import TaskDeferralTimeout  # type: ignore[no-redef,attr-defined]

try:
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow 3.1 keeps it in airflow.exceptions
    from airflow.exceptions import AirflowFailException  # type: ignore[no-redef,attr-defined]

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_kling.hooks.kling import KlingHook
    from airflow_provider_kling.models import CheckedArguments
    from airflow_provider_kling.protocol.types import FalRequest

__all__ = ["DEFAULT_POLL_INTERVAL", "DEFAULT_TIMEOUT", "KlingVideoOperator", "is_lazy"]

# Failures after which the request is no longer running: fal ended the job (failed, rejected the
# input at result time, never started it), or the timeout path has already cancelled it.
_JOB_IS_OVER = (KlingRequestFailedError, KlingTimeoutError, KlingValidationError)
DEFAULT_TIMEOUT = 3600.0


def is_lazy(value: Any) -> bool:
    """True for values only known at run time (Jinja strings, XComArgs, ObjectStoragePaths...)."""
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, Mapping):
        return any(is_lazy(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(is_lazy(v) for v in value)
    return type(value).__module__.startswith("airflow.")


class KlingVideoOperator(BaseOperator):
    """Generate a video with any Kling endpoint on fal.ai and return its URL.

    Returns (XCom ``return_value``) a small JSON dict: ``request_id``, ``endpoint_id``,
    ``video_url``, ``content_type``, ``file_name``, ``file_size``, ``duration`` (seconds asked
    for), ``cost_estimate`` (a decimal string in USD, or None when unknown) and ``max_cost_usd``
    (the cap in force, or None). With
    ``wait_for_completion=False`` the video fields are None; follow up with
    :class:`~airflow_provider_kling.sensors.kling.KlingRequestSensor`. XCom ``request_id`` is
    pushed right after submit, ``video_url`` on completion, ``fal_request_url`` when the connection
    yields a dashboard link. Outlet assets get ``{"video_url", "request_id", "endpoint_id"}`` as
    their event's ``extra``.

    :param endpoint_id: fal endpoint id, e.g. ``fal-ai/kling-video/v1.6/standard/image-to-video``.
    :param arguments: the endpoint's input (fal field names). Local file paths in file fields are
        uploaded to fal's CDN first. Templated.
    :param fal_conn_id: Airflow connection of type ``fal``.
    :param wait_for_completion: wait for the video; False returns right after submit.
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param poll_interval: seconds between status checks.
    :param timeout: seconds (or a timedelta) to wait for the video before cancelling the request
        and failing; ``execution_timeout`` also bounds it.
    :param use_sse: in deferrable mode, follow fal's SSE status stream (polling fallback).
    :param webhook_url: optional URL fal calls when the request completes.
    :param webhook_asset: event-driven mode (needs ``wait_for_completion=False``): fal's completion
        webhook, received by the provider's api-server plugin, records one event on this asset
        (an ``Asset`` or an asset name) carrying ``request_id``, ``endpoint_id``, ``status``,
        ``video_url`` or fal's ``error``. Schedule a DAG on the asset to handle each video. fal calls
        ``webhook_url`` if given, else ``[kling] webhook_url`` / ``[api] base_url``.
    :param priority: fal queue priority, ``"normal"`` or ``"low"``.
    :param start_timeout: seconds fal may keep the request queued before giving up (> 1).
    :param reattach_on_retry: on a retry (or a cleared task), follow or reuse the request the
        previous try submitted instead of paying for a new one. The handle lives in the task state
        store on Airflow >= 3.3 and in an Airflow Variable on 3.1/3.2 (deleted on success there).
        A completed request is reused only when the endpoint and arguments are unchanged; set this
        to False to always generate a new video.
    :param max_cost_usd: refuse to upload or submit when the request's estimated cost (USD)
        exceeds this; the message names the estimate, the cap and how the estimate was computed.
        Templated; default: the ``fal`` connection's extra ``max_cost_usd``, else no cap.
    :param allow_unknown_cost: under a cap, submit to an endpoint whose price is not known
        (otherwise refused, since the cap cannot be checked).
    :param lineage_include_prompt: put the prompt itself into the OpenLineage ``klingRequest`` run
        facet (by default only its SHA-256 is sent to the lineage backend).
    :param allow_unknown_effect_scene: send an ``effect_scene`` this provider does not know yet
        (fal adds scenes monthly) instead of refusing it; a typo such as ``sqiush`` is refused
        with a "did you mean" unless this is set.
    :param resubmit_if_uncertain: what to do when a submit may have created a paid job whose
        request id never arrived (fal's answer was lost, or the worker died while the submit was in
        flight; the reattach store records every submit before it is sent). False (default): no try
        submits again; the task fails at once, without its remaining retries, and says to check the
        fal dashboard. True: the next try submits again, so a second paid job may result.
    """

    template_fields: Sequence[str] = (
        "endpoint_id",
        "arguments",
        "fal_conn_id",
        "webhook_url",
        "priority",
        "max_cost_usd",
    )
    template_fields_renderers = {"arguments": "json"}
    ui_color = "#f3e8ff"
    operator_extra_links = (KlingVideoLink(), FalRequestLink())

    # Tests use this to exercise the Airflow < 3.3 store on a 3.3 install.
    _force_variable_store = False

    def __init__(
        self,
        endpoint_id: str | None = None,
        arguments: Mapping[str, Any] | str | None = None,
        *,
        fal_conn_id: str = "fal_default",
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        use_sse: bool = True,
        webhook_url: str | None = None,
        webhook_asset: Any = None,
        priority: str | None = None,
        start_timeout: float | None = None,
        reattach_on_retry: bool = True,
        allow_unknown_effect_scene: bool = False,
        resubmit_if_uncertain: bool = False,
        max_cost_usd: float | str | None = None,
        allow_unknown_cost: bool = False,
        lineage_include_prompt: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint_id = endpoint_id
        self.arguments = arguments if arguments is not None else {}
        self.fal_conn_id = fal_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = check_poll_interval(poll_interval)
        self.timeout = check_seconds(timeout, "timeout")
        self.use_sse = use_sse
        self.webhook_url = webhook_url
        self.webhook_asset = _webhook.check_asset(webhook_asset, wait_for_completion)
        self.priority = priority
        self.start_timeout = start_timeout
        self.reattach_on_retry = reattach_on_retry
        self.resubmit_if_uncertain = resubmit_if_uncertain
        self.allow_unknown_effect_scene = allow_unknown_effect_scene
        self.max_cost_usd = max_cost_usd
        self.allow_unknown_cost = allow_unknown_cost
        self.lineage_include_prompt = lineage_include_prompt
        if not is_lazy(max_cost_usd):
            parse_usd(max_cost_usd, "max_cost_usd")  # a typo fails at parse time, not at run time
        if priority is not None and not is_lazy(priority) and priority not in ("normal", "low"):
            raise KlingConfigurationError(f"priority must be 'normal' or 'low', got {priority!r}")
        if start_timeout is not None and check_seconds(start_timeout, "start_timeout") <= 1:
            raise KlingConfigurationError(f"start_timeout must be more than 1 second, got {start_timeout!r}")
        if deferrable and not wait_for_completion:
            warnings.warn(
                f"{self.task_id}: deferrable has no effect with wait_for_completion=False (nothing to wait for)",
                UserWarning,
                stacklevel=2,
            )
        # The request this instance is responsible for, once it exists: what on_kill cancels.
        self._stored: StoredRequest | None = None
        self._finished = False
        self._arguments: dict[str, Any] | None = None
        # Link targets pushed by this process (read by the extra links at the end of the try).
        setattr(self, xcom.PUSHED_LINKS_ATTR, {})
        # The request that may still be running at fal while this try works with it: what a try
        # that fails for good cancels (see _settle_after_failure).
        self._at_stake: FalRequest | None = None

    @cached_property
    def hook(self) -> KlingHook:
        from airflow_provider_kling.hooks.kling import KlingHook

        return KlingHook(fal_conn_id=self.fal_conn_id)

    def build_request(self) -> tuple[str, dict[str, Any]]:
        """Return ``(endpoint_id, arguments)`` from the rendered fields; typed subclasses override."""
        if not isinstance(self.endpoint_id, str) or not self.endpoint_id:
            raise KlingConfigurationError(f"endpoint_id must be a non-empty string, got {self.endpoint_id!r}")
        if not isinstance(self.arguments, Mapping):
            raise KlingConfigurationError(
                f"arguments must be a dict of the endpoint's input, got {type(self.arguments).__name__}"
            )
        return self.endpoint_id, dict(self.arguments)

    # -- execute: reattach, reuse or submit -----------------------------------------------------

    @metrics.count_failures
    @xcom.records_failure
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_kling.models import check_arguments
        from airflow_provider_kling.protocol.headers import check_submit_options

        endpoint_id, arguments = self.build_request()
        self._arguments = arguments  # its prompt goes to XCom kling_request for the UI
        # Bad input fails here, before any network call (and before any money is spent): the
        # rendered submit options too, or a bad templated priority would fail after the uploads.
        webhook_url = self.webhook_url
        if self.webhook_asset is not None:
            webhook_url = _webhook.webhook_url(webhook_url)  # the receiver's URL, from the config
        check_submit_options(
            webhook_url=webhook_url, priority=self.priority, start_timeout=self.start_timeout
        )
        # Validated once: the fingerprint and the cost read the payload, the submit uploads into it.
        checked = check_arguments(
            endpoint_id, arguments, allow_unknown_effect_scene=self.allow_unknown_effect_scene
        )
        wanted = fingerprint(endpoint_id, checked.payload)
        self._budget = self._cost_budget(endpoint_id, checked.payload)

        state = self._reattach_state(context)
        try:
            return self._execute(context, state, endpoint_id, checked, wanted)
        except Exception as exc:
            # Not TaskDeferred (a BaseException): a deferred task is still following its request.
            self._settle_after_failure(context, state, exc)
            raise

    def _execute(
        self, context: Context, state: ReattachState, endpoint_id: str, checked: CheckedArguments, wanted: str
    ) -> dict[str, Any]:
        record = state.load_any()
        if isinstance(record, SubmitInFlight):
            self._after_uncertain_submit(record)
            record = None
        loaded = record
        if loaded is not None and loaded.output is None and loaded.fingerprint == wanted:
            # Until fal says otherwise, the earlier try's request may still be running.
            self._at_stake = loaded.request
        decision, previous = state.decide(self.hook, loaded, wanted)
        self._at_stake = None
        if decision == "reuse" and previous is not None:
            output = self._reuse(context, state, previous)
            if output is not None:
                metrics.reattached(endpoint_id, "reuse")
                return output
        if decision == "reattach" and previous is not None:
            metrics.reattached(endpoint_id, "follow")
            stored = self._stored = previous
            self._at_stake = stored.request
            if self.webhook_asset is not None:
                _webhook.register(context, stored, self.webhook_asset)  # the crashed try may not have
            xcom.push_request_xcoms(context, self.hook, stored.request, self.log, self._arguments)
        else:
            stored = self._submit(context, state, endpoint_id, checked, wanted)

        if not self.wait_for_completion:
            state.finish(stored)
            self._at_stake = None
            return self._with_cap(
                pending_output(stored.request, duration=stored.duration, cost_estimate=stored.cost_estimate)
            )
        if self.deferrable:
            self._defer(context, stored)
        return self._wait_in_worker(context, state, stored)

    def _cost_budget(self, endpoint_id: str, validated: dict[str, Any]) -> CostBudget:
        from airflow_provider_kling.models import cost_budget

        return cost_budget(
            endpoint_id,
            validated,
            prices=self.hook.prices,
            max_cost_usd=self.max_cost_usd,
            connection_max_cost_usd=self.hook.settings.max_cost_usd,
            allow_unknown_cost=self.allow_unknown_cost,
        )

    def _with_cap(self, output: dict[str, Any]) -> dict[str, Any]:
        """The return value with ``max_cost_usd``: the cap this task ran under (None: no cap)."""
        cap, _ = effective_cap(self.max_cost_usd, self.hook.settings.max_cost_usd)
        return {**output, "max_cost_usd": None if cap is None else str(cap)}

    def _reattach_state(self, context: Context) -> ReattachState:
        if not self.reattach_on_retry:
            return ReattachState(None, self.log)
        return ReattachState.from_context(context, self.log, force_variable=self._force_variable_store)

    def _submit(
        self, context: Context, state: ReattachState, endpoint_id: str, checked: CheckedArguments, wanted: str
    ) -> StoredRequest:
        hook = self.hook
        budget = self._budget
        self.log.info("Submitting to %s; %s", endpoint_id, budget.describe())
        budget.enforce()  # before any upload: a refused task has spent nothing
        webhook_url = self.webhook_url
        if self.webhook_asset is not None:
            webhook_url = _webhook.webhook_url(webhook_url)
        prepared = checked.upload(hook.upload_file)
        # Recorded before the POST leaves: if this worker dies, or fal's answer is lost, the next try
        # knows a paid job may exist even though it never learnt its id.
        ti = context.get("ti")
        state.mark_in_flight(
            SubmitInFlight(endpoint_id, wanted, time.time(), getattr(ti, "try_number", None))
        )
        # The hook logs "Submitted fal request <id>"; the operator does not repeat it.
        try:
            request = hook.submit(
                endpoint_id,
                prepared,
                webhook_url=webhook_url,
                priority=self.priority,
                start_timeout=self.start_timeout,
            )
        except KlingSubmitUncertainError as exc:
            if self.resubmit_if_uncertain:
                raise  # the marker stays; the next try submits again, as asked
            raise AirflowFailException(
                f"{exc} Not retrying the task: a retry would have to submit again. {self._uncertain_hint()}"
            ) from exc
        except KlingError:
            # fal refused it, or it never left this machine: no job exists.
            state.clear_in_flight()
            raise
        self._at_stake = request
        metrics.submitted(endpoint_id, budget.estimate_cents)
        stored = self._stored = StoredRequest(
            request=request,
            fingerprint=wanted,
            submitted_at=time.time(),
            cost_estimate=cost_to_str(budget.estimate),
            duration=requested_duration(prepared),
        )
        # Persist first: everything after this line may crash, and the next try must find the request.
        try:
            state.save(stored)
            if self.webhook_asset is not None:
                _webhook.register(context, stored, self.webhook_asset)
        except Exception:
            self.log.error(
                "Could not record fal request %s for retries; cancelling it so a retry cannot pay twice",
                request.request_id,
            )
            self._at_stake = None
            self._cancel_quietly(request)
            raise
        xcom.push_request_xcoms(context, hook, request, self.log, self._arguments)
        return stored

    @staticmethod
    def _uncertain_hint() -> str:
        return (
            "Check your requests on the fal dashboard before running the task again; to submit again "
            "anyway, set resubmit_if_uncertain=True on the task and clear it."
        )

    def _after_uncertain_submit(self, marker: SubmitInFlight) -> None:
        """An earlier try sent a submit and never learnt its request id: a paid job may exist."""
        message = (
            f"An earlier try of this task may have created a paid fal job: {marker.describe()} and never "
            "learnt its request id (the worker died while the submit was in flight, or fal's answer was lost)."
        )
        if not self.resubmit_if_uncertain:
            raise AirflowFailException(
                f"{message} Not submitting again, to avoid paying twice. {self._uncertain_hint()}"
            )
        self.log.warning("%s resubmit_if_uncertain=True: submitting again.", message)

    def _reuse(
        self, context: Context, state: ReattachState, previous: StoredRequest
    ) -> dict[str, Any] | None:
        """The earlier try's video, or None when fal no longer has its result (then submit anew)."""
        self._stored = previous
        output = previous.output
        if output is None:
            try:
                result = fetch_result(self.hook, previous.request)
            except (KlingNotFoundError, KlingRequestFailedError, KlingValidationError) as exc:
                # fal answered: the result is gone or the job failed after all. Trouble reaching fal
                # (ingress 5xx, transport, 429) proves nothing and is raised: paying again on a
                # hiccup is the wrong default, and the task's own retry will ask again.
                self.log.warning(
                    "The result of fal request %s is not available (%s); submitting anew",
                    previous.request.request_id,
                    exc,
                )
                return None
            output = self._output(previous, result)
        xcom.push_request_xcoms(context, self.hook, previous.request, self.log, self._arguments)
        return self._finish(context, state, previous, output)

    # -- waiting --------------------------------------------------------------------------------

    def _deadline(self, context: Context) -> float:
        """Epoch seconds after which waiting stops: ``timeout`` from now, capped by execution_timeout."""
        deadline = time.time() + self.timeout
        start = getattr(context.get("ti"), "start_date", None)
        if self.execution_timeout is not None and start is not None:
            deadline = min(deadline, start.timestamp() + self.execution_timeout.total_seconds())
        return deadline

    def _defer(self, context: Context, stored: StoredRequest) -> NoReturn:
        # Imported here: the trigger module pulls in Airflow's trigger base (~10 ms of every DAG
        # file's parse), and only a deferring task needs it.
        from airflow_provider_kling.triggers.kling import KlingRequestTrigger

        trigger = KlingRequestTrigger.for_request(
            stored.request,
            fal_conn_id=self.fal_conn_id,
            poll_interval=self.poll_interval,
            timeout=self._deadline(context) - time.time(),
            use_sse=self.use_sse,
            submitted_at=stored.submitted_at,
        )
        trigger.log_deferral(self.log)
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            kwargs={"stored": stored.to_json()},
            timeout=trigger.defer_timeout(),
        )

    def _wait_in_worker(
        self, context: Context, state: ReattachState, stored: StoredRequest
    ) -> dict[str, Any]:
        """Poll in the worker (sync mode); the same progress lines as the trigger logs.

        ``hook.wait`` cancels the request (best effort) when the deadline passes, then raises.
        """
        request = stored.request
        progress = ProgressReporter(self.log, request.request_id, stored.submitted_at)
        # A deadline already behind us still gets one status poll: the video may be ready.
        remaining = max(self._deadline(context) - time.time(), 0.001)
        result = self.hook.wait(
            request, poll_interval=self.poll_interval, timeout=remaining, on_update=progress.update
        )
        return self._finish(context, state, stored, self._output(stored, result))

    # -- resuming after the trigger -------------------------------------------------------------

    @metrics.count_failures
    @xcom.records_failure
    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, stored: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger fired: fetch the result in the worker or fail with fal's error.

        The resumed task is a fresh operator instance, so everything comes from the event and the
        deferral kwargs, never from attributes set in ``execute``.

        Resumed *without* an event, the process that ran the trigger died before it fired (e.g.
        ``airflow dags test``, which runs triggers inline, was killed while the task waited): the
        request is followed again with a new trigger instead of failing with no reason.
        """
        if event is None:
            self._follow_again(context, stored)
        event = validate_event(event)
        state = self._reattach_state(context)
        previous = self._stored = self._handle_for_event(event, stored, state)
        xcom.remember_dashboard_link(context, self.hook, previous.request, self.log)
        self.raise_for_event(context, event, previous.request)
        result = fetch_result(self.hook, previous.request)
        return self._finish(context, state, previous, self._output(previous, result))

    def _follow_again(self, context: Context, stored: dict[str, Any] | None) -> None:
        state = self._reattach_state(context)
        handle = StoredRequest.from_json(stored) or state.load()
        if handle is None:
            raise KlingError(
                "The task resumed from its deferral without a trigger event (the process running the "
                "trigger died) and no record of its fal request was found; check the fal dashboard."
            )
        self.log.warning(
            "Resumed without a trigger event (the process running the trigger died before it fired); "
            "following fal request %s again",
            handle.request.request_id,
        )
        self._stored = handle
        self._defer(context, handle)

    def _handle_for_event(
        self, event: dict[str, Any], stored: dict[str, Any] | None, state: ReattachState
    ) -> StoredRequest:
        """The handle ``execute`` stored for the event's request, the same in every mode.

        The deferral kwargs carry it under a real triggerer, but ``dag.test()`` resumes the task
        with the event alone; then the reattach store has it. Without either (no store), it is
        rebuilt from this task's own inputs, so the stored fingerprint, cost estimate and duration
        (and the return value) never depend on how the task was run.
        """
        request_id = event["request_id"]
        for candidate in (StoredRequest.from_json(stored), state.load()):
            if candidate is not None and candidate.request.request_id == request_id:
                return candidate
        # The event's ids are the truth: the request is the one the trigger followed.
        request = self.hook.request_from_id(str(event.get("endpoint_id")), request_id)
        return self._describe(request)

    def _describe(self, request: FalRequest) -> StoredRequest:
        """A handle for ``request`` with the fingerprint, cost and duration of this task's inputs."""
        from airflow_provider_kling.models import check_arguments, estimate_cost

        endpoint_id, arguments = self.build_request()
        validated = check_arguments(
            endpoint_id, arguments, allow_unknown_effect_scene=self.allow_unknown_effect_scene
        ).payload
        try:
            cost = estimate_cost(endpoint_id, validated, prices=self.hook.prices)
        except KlingError as exc:  # a bad price override was logged at submit; no reason to fail now
            self.log.warning("No cost estimate: %s", exc)
            cost = None
        return StoredRequest(
            request=request,
            fingerprint=fingerprint(endpoint_id, validated),
            submitted_at=time.time(),
            cost_estimate=cost_to_str(cost),
            duration=requested_duration(validated),
        )

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Cancel the request when Airflow's deferral backstop fires instead of the trigger's event.

        That only happens when no triggerer ran the trigger in time (all down, or overloaded); the
        task fails as before, but like the trigger's own ``timeout`` it must not leave the request
        running. The handle comes from the reattach store: the deferral kwargs are gone by then.
        """
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except TaskDeferralTimeout:
            stored = self._reattach_state(context).load()
            if stored is not None:
                self.log.error("No trigger event before the deferral timeout; cancelling the fal request")
                self._cancel_quietly(stored.request)
            raise

    def raise_for_event(self, context: Context, event: dict[str, Any], request: FalRequest) -> None:
        """Turn a ``timeout`` / ``error`` event into the matching exception (cancelling as needed)."""
        status = event["status"]
        if status == "success":
            return
        if status == "timeout":
            self._cancel_and_raise_timeout(request, str(event.get("message")))
        if event.get("source") == "job":
            raise_job_failure(self.hook, request, event.get("message"), event.get("error_type"))
        # Polling trouble: the request may still be running (the same decision as a sync wait).
        self._settle(context, self._reattach_state(context), request)
        raise KlingError(
            str(event.get("message")), request_id=request.request_id, error_type=event.get("error_type")
        )

    # -- endings --------------------------------------------------------------------------------

    def _output(self, stored: StoredRequest, result: Mapping[str, Any]) -> dict[str, Any]:
        return output_from_result(
            stored.request, result, duration=stored.duration, cost_estimate=stored.cost_estimate
        )

    def _finish(
        self, context: Context, state: ReattachState, stored: StoredRequest, output: dict[str, Any]
    ) -> dict[str, Any]:
        output = self._with_cap(output)
        stored.output = output
        self._finished = True
        state.finish(stored)
        xcom.publish_output(context, output, self.outlets)
        self.log.info("Video ready: %s (fal request %s)", output["video_url"], output["request_id"])
        return output

    def _cancel_and_raise_timeout(self, request: FalRequest, message: str) -> NoReturn:
        outcome = self._cancel_quietly(request)
        raise KlingTimeoutError(
            f"{message}; cancellation of fal request {request.request_id} requested ({outcome})",
            request_id=request.request_id,
        )

    def _settle_after_failure(self, context: Context, state: ReattachState, exc: Exception) -> None:
        """``execute`` failed: settle the request it may have left running (see :meth:`_settle`)."""
        request, self._at_stake = self._at_stake, None
        if request is None or self._finished or isinstance(exc, _JOB_IS_OVER):
            return
        self._settle(context, state, request)

    def _settle(self, context: Context, state: ReattachState, request: FalRequest) -> None:
        """The task is failing while ``request`` may still run at fal. One rule for every mode:
        when another try will follow it (a retry is coming and can find the handle), leave it
        running; when this try fails for good, cancel it rather than leave a paid orphan."""
        rid = request.request_id
        if self.reattach_on_retry and state.backend is not None and retry_coming(context):
            self.log.warning(
                "Leaving fal request %s running: the task will be retried and the next try follows it", rid
            )
            return
        self.log.error("The task fails for good while fal request %s may still run; cancelling it", rid)
        outcome = self._cancel_quietly(request)
        self.log.warning("Cancellation of fal request %s after the failure: %s", rid, outcome)

    def _cancel_quietly(self, request: FalRequest) -> str:
        """Best-effort cancel (the hook logs the outcome); never raises over the error being reported."""
        try:
            return str(self.hook.cancel(request))
        except Exception as exc:
            self.log.warning("Could not cancel fal request %s: %s", request.request_id, exc)
            return f"cancel failed: {exc}"

    # -- OpenLineage: called by the OpenLineage provider only (the module imports OpenLineage) ---

    def get_openlineage_facets_on_start(self) -> Any:
        """Input media and the request facet (no request id yet); see :mod:`airflow_provider_kling.lineage`."""
        from airflow_provider_kling.lineage import kling_operator_lineage

        return kling_operator_lineage(self, complete=False)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input media, the generated video's URL, and the request facet with its fal request id."""
        from airflow_provider_kling.lineage import kling_operator_lineage

        return kling_operator_lineage(self, complete=True)

    def on_kill(self) -> None:
        """Cancel the remote request when the task is killed while waiting in the worker."""
        if self._stored is not None and not self._finished:
            self._cancel_quietly(self._stored.request)
