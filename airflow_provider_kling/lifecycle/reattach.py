"""Never pay twice: remember the submitted fal request where the next try of the task finds it.

A fal request costs money the moment it is accepted. If the worker dies after submit (OOM, node
loss, ``execution_timeout``, SIGKILL), Airflow starts a new try of the same task instance; that try
must follow the request already paid for instead of submitting a second one.

Where the handle lives:

* **Airflow >= 3.3**: the task state store (``context["task_state_store"]``, AIP-103). Rows are scoped
  to (dag run, task id, map index), shared by every try of the task instance, kept after success
  unless ``[state_store] clear_on_success`` is set, and kept when the task is cleared.
* **Airflow 3.1 / 3.2**: no task state store, and XComs are no use (the execution API deletes a task
  instance's XComs when a new try starts). An Airflow Variable keyed by dag id / run id / task id /
  map index is durable across tries instead; it is deleted when the task succeeds, so on these
  versions clearing a succeeded task generates a new video.

What is stored (JSON, never the API key): the :class:`FalRequest` fields (incl. endpoint id), a
fingerprint of the endpoint + rendered arguments, the submit time, the cost estimate and, once the
video is ready, the small output dict (so a later try can reuse it even after fal has dropped the
result, which it keeps for about an hour).

Before the submit POST leaves, the same slot holds a :class:`SubmitInFlight` marker instead. A try
that finds a marker knows that an earlier try sent a submit and never learnt its request id (the
worker died in between, or fal's answer was lost): a paid job may exist, so it does not submit
unless the user opted in. fal offers no way to look the request up that this provider can rely on.
Queue submits take no client-chosen request id or idempotency key (fal-client's submit sends only
priority, runner-hint and start-timeout headers: fal-ai/fal, projects/fal_client/src/fal_client/client.py).
The Platform API's ``GET https://api.fal.ai/v1/models/requests/by-endpoint``
(https://fal.ai/docs/platform-apis/v1/models/requests/by-endpoint) lists a key's requests with their
``json_input`` (``expand=payloads``), but filters them by outcome (success, error, user_error) and
sorts them by end time, which suggests a request still queued or running is not listed; it cannot be
tried offline. So the user decides, with the dashboard.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from airflow_provider_kling.exceptions import KlingNotFoundError
from airflow_provider_kling.protocol.status import wait_outcome
from airflow_provider_kling.protocol.types import FalRequest

STATE_KEY = "kling_request"

Decision = Literal["submit", "reattach", "reuse"]


def fingerprint(endpoint_id: str, arguments: Any) -> str:
    """A stable digest of what was asked for; a retry with different inputs must not reuse a video."""
    blob = json.dumps({"endpoint_id": endpoint_id, "arguments": arguments}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class StoredRequest:
    """What one try leaves behind for the next one.

    :param request: the fal request handle.
    :param fingerprint: :func:`fingerprint` of endpoint + arguments at submit time.
    :param submitted_at: epoch seconds of the submit.
    :param cost_estimate: the cost estimate logged at submit (a Decimal as str), if any.
    :param duration: seconds of video asked for, if known.
    :param output: the small result dict once the video is ready, else None.
    """

    request: FalRequest
    fingerprint: str
    submitted_at: float
    cost_estimate: str | None = None
    duration: float | int | None = None
    output: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request.to_dict(),
            "fingerprint": self.fingerprint,
            "submitted_at": self.submitted_at,
            "cost_estimate": self.cost_estimate,
            "duration": self.duration,
            "output": self.output,
        }

    @classmethod
    def from_json(cls, data: Any) -> StoredRequest | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                request=FalRequest.from_dict(data["request"]),
                fingerprint=str(data["fingerprint"]),
                submitted_at=float(data["submitted_at"]),
                cost_estimate=data.get("cost_estimate"),
                duration=data.get("duration") if isinstance(data.get("duration"), (int, float)) else None,
                output=data.get("output") if isinstance(data.get("output"), dict) else None,
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass
class SubmitInFlight:
    """A submit that was about to be sent, or sent without its answer arriving: a paid job may exist.

    :param endpoint_id: where the submit went.
    :param fingerprint: :func:`fingerprint` of endpoint + arguments.
    :param started_at: epoch seconds just before the POST.
    :param try_number: the try that sent it.
    """

    endpoint_id: str
    fingerprint: str
    started_at: float
    try_number: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "submit_in_flight": {
                "endpoint_id": self.endpoint_id,
                "fingerprint": self.fingerprint,
                "started_at": self.started_at,
                "try_number": self.try_number,
            }
        }

    @classmethod
    def from_json(cls, data: Any) -> SubmitInFlight | None:
        marker = data.get("submit_in_flight") if isinstance(data, dict) else None
        if not isinstance(marker, dict):
            return None
        try:
            try_number = marker.get("try_number")
            return cls(
                endpoint_id=str(marker["endpoint_id"]),
                fingerprint=str(marker["fingerprint"]),
                started_at=float(marker["started_at"]),
                try_number=try_number if isinstance(try_number, int) else None,
            )
        except (KeyError, TypeError, ValueError):
            return None

    def describe(self) -> str:
        when = datetime.fromtimestamp(self.started_at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        which = f"try {self.try_number}" if self.try_number is not None else "an earlier try"
        return f"{which} sent a submit to {self.endpoint_id} at {when}"


class _TaskStateStore:
    """Airflow >= 3.3: the task instance's own state store.

    :param accessor: ``context["task_state_store"]`` (``get`` / ``set`` / ``delete`` by key).
    """

    kind = "task_state_store"
    durable_after_success = True

    def __init__(self, accessor: Any) -> None:
        self._accessor = accessor

    def load(self) -> Any:
        return self._accessor.get(STATE_KEY)

    def save(self, value: dict[str, Any]) -> None:
        self._accessor.set(STATE_KEY, value)

    def discard(self) -> None:
        self._accessor.delete(STATE_KEY)


class _VariableStore:
    """Airflow < 3.3: one Variable per task instance (all tries share it).

    :param ti: the running task instance; its dag/run/task ids and map index scope the Variable.
    """

    kind = "variable"
    durable_after_success = False

    def __init__(self, ti: Any) -> None:
        scope = f"{ti.dag_id}|{ti.run_id}|{ti.task_id}|{getattr(ti, 'map_index', -1)}"
        # Variable keys are limited to 250 characters; run ids can be long, so hash the scope.
        digest = hashlib.sha256(scope.encode()).hexdigest()[:24]
        self.key = f"kling_reattach__{ti.dag_id[:80]}__{ti.task_id[:80]}__{digest}"
        self._scope = scope

    def load(self) -> Any:
        from airflow.sdk import Variable

        return Variable.get(self.key, default=None, deserialize_json=True)

    def save(self, value: dict[str, Any]) -> None:
        from airflow.sdk import Variable

        Variable.set(
            self.key,
            value,
            description=f"airflow-provider-kling reattach handle for {self._scope}",
            serialize_json=True,
        )

    def discard(self) -> None:
        from airflow.sdk import Variable

        Variable.delete(self.key)


class ReattachState:
    """Read and write the previous try's fal request for one task instance.

    :param backend: the storage (task state store or Variable wrapper), or None when the context
        offers neither (then every try submits, as an operator without reattach would).
    :param log: logger for the decisions made.
    """

    def __init__(self, backend: _TaskStateStore | _VariableStore | None, log: logging.Logger | Any) -> None:
        self.backend = backend
        self.log = log

    @classmethod
    def from_context(cls, context: Any, log: Any, *, force_variable: bool = False) -> ReattachState:
        # Airflow >= 3.3 puts the task state store (AIP-103) in every task's context; 3.1 / 3.2
        # have no such key and get the Variable. Asking the context rather than the version keeps
        # this working wherever the runtime offers a store.
        accessor = None if force_variable else context.get("task_state_store")
        if accessor is not None:
            return cls(_TaskStateStore(accessor), log)
        ti = context.get("ti")
        if ti is not None and getattr(ti, "run_id", None):
            return cls(_VariableStore(ti), log)
        log.warning("No durable store in the task context: a retry of this task will submit a new request")
        return cls(None, log)

    def load(self) -> StoredRequest | None:
        if self.backend is None:
            return None
        return StoredRequest.from_json(self.backend.load())

    def load_any(self) -> StoredRequest | SubmitInFlight | None:
        """What the previous try left: its request, the marker of a submit it never heard back
        from, or nothing."""
        if self.backend is None:
            return None
        data = self.backend.load()
        return StoredRequest.from_json(data) or SubmitInFlight.from_json(data)

    def save(self, stored: StoredRequest) -> None:
        if self.backend is not None:
            self.backend.save(stored.to_json())

    def mark_in_flight(self, marker: SubmitInFlight) -> None:
        """Record, before the POST leaves, that a submit is under way (raises if it cannot be
        recorded: then nothing may be sent)."""
        if self.backend is not None:
            self.backend.save(marker.to_json())

    def clear_in_flight(self) -> None:
        """The submit provably created no job (fal refused it, or it never left): forget the marker."""
        if self.backend is not None:
            self.backend.discard()

    def finish(self, stored: StoredRequest) -> None:
        """The task instance succeeded with ``stored`` (its video, or only its submit).

        A store that outlives success keeps the handle with the output, so clearing the task reuses
        the video; the Variable store drops it, or every run would leave a Variable behind.
        """
        if self.backend is None:
            return
        if not self.backend.durable_after_success:
            self.backend.discard()
        elif stored.output is not None:
            self.backend.save(stored.to_json())

    def decide(
        self, hook: Any, previous: StoredRequest | None, wanted: str
    ) -> tuple[Decision, StoredRequest | None]:
        """Choose between following the previous request, reusing its video, and a fresh submit.

        Still queued / in progress → ``reattach``; completed OK → ``reuse`` (its stored output, or
        the result fetched again); failed, cancelled, unknown to fal or asked with other inputs →
        ``submit``. Any other error while asking fal is raised: when in doubt, a new paid job is the
        wrong default.
        """
        if previous is None:
            return "submit", None
        rid = previous.request.request_id
        if previous.fingerprint != wanted:
            self.log.warning(
                "The previous try submitted fal request %s with different inputs; submitting a new request",
                rid,
            )
            return "submit", None
        if previous.output is not None:
            self.log.info("Reusing the video of fal request %s from an earlier try (no new request)", rid)
            return "reuse", previous
        try:
            status = hook.get_status(previous.request, logs=False)
        except KlingNotFoundError:
            self.log.warning("fal no longer knows request %s from an earlier try; submitting anew", rid)
            return "submit", None
        outcome = wait_outcome(status)
        if outcome == "waiting":
            self.log.info("Reattaching to fal request %s from an earlier try (status %s)", rid, status.status)
            return "reattach", previous
        if outcome == "failed":
            self.log.warning(
                "fal request %s from an earlier try failed (%s: %s); submitting anew",
                rid,
                status.error_type,
                status.error,
            )
            return "submit", None
        self.log.info("fal request %s from an earlier try already completed; reusing its result", rid)
        return "reuse", previous


def retry_coming(context: Any) -> bool:
    """Whether Airflow will run another try of this task instance if the current one fails.

    The execution API tells the task runner (``should_retry``, which also knows about
    ``max_tries`` being raised by a clear); older runtimes only give the counters.
    """
    ti = context.get("ti")
    if ti is None:
        return False
    should_retry = getattr(getattr(ti, "_ti_context_from_server", None), "should_retry", None)
    if isinstance(should_retry, bool):
        return should_retry
    try:
        return int(ti.try_number) <= int(getattr(ti, "max_tries", 0) or 0)
    except (TypeError, ValueError):
        return False
