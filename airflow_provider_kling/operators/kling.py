"""Operators that generate Kling videos through fal.ai's queue API.

:class:`KlingVideoOperator` takes any Kling endpoint id and its arguments; the typed operators
(:class:`KlingImageToVideoOperator`, :class:`KlingTextToVideoOperator`, :class:`KlingLipSyncOperator`,
:class:`KlingVideoEffectsOperator`) take readable keyword arguments and pick the endpoint for you.

All of them validate locally, upload local files, submit once, and wait in the worker (sync) or in
the triggerer (``deferrable=True``). A retry follows the request the previous try paid for instead
of submitting again (see :mod:`airflow_provider_kling.operators._reattach`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_kling.exceptions import (
    KlingConfigurationError,
    KlingError,
    KlingRequestFailedError,
    KlingTimeoutError,
)
from airflow_provider_kling.links.kling import FalRequestLink, KlingVideoLink
from airflow_provider_kling.operators import _completion as completion
from airflow_provider_kling.operators._endpoints import (
    image_to_video_request,
    lipsync_request,
    text_to_video_request,
    video_effects_request,
)
from airflow_provider_kling.operators._progress import ProgressReporter
from airflow_provider_kling.operators._reattach import ReattachState, StoredRequest, fingerprint
from airflow_provider_kling.protocol.types import FalRequest
from airflow_provider_kling.triggers.kling import KlingRequestTrigger

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1's task SDK does not export it
    from airflow.configuration import conf  # type: ignore[no-redef,assignment]

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_kling.hooks.kling import KlingHook

DEFAULT_POLL_INTERVAL = 10.0
DEFAULT_TIMEOUT = 3600.0
# The operator's own deferral backstop fires this long after the trigger's deadline, so the
# trigger's clean ``timeout`` event (which leads to a cancel) always wins the race.
_BACKSTOP_MARGIN = 60.0

# User inputs of the typed operators: all templated, and checked at parse time when not lazy.
_I2V_FIELDS = (
    "prompt",
    "image",
    "tail_image",
    "model",
    "tier",
    "duration",
    "aspect_ratio",
    "negative_prompt",
    "cfg_scale",
    "extra_arguments",
)
_T2V_FIELDS = (
    "prompt",
    "model",
    "tier",
    "duration",
    "aspect_ratio",
    "negative_prompt",
    "cfg_scale",
    "camera_control",
    "advanced_camera_control",
    "extra_arguments",
)
_LIPSYNC_FIELDS = ("video", "audio", "text", "voice_id", "voice_language", "voice_speed", "extra_arguments")
_EFFECTS_FIELDS = ("effect_scene", "images", "model", "tier", "duration", "extra_arguments")


def _seconds(value: float | timedelta, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        raise KlingConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(seconds)


class KlingVideoOperator(BaseOperator):
    """Generate a video with any Kling endpoint on fal.ai and return its URL.

    Returns (XCom ``return_value``) a small JSON dict: ``request_id``, ``endpoint_id``,
    ``video_url``, ``content_type``, ``file_name``, ``file_size``, ``duration`` (seconds asked
    for) and ``cost_estimate`` (a decimal string in USD, or None when unknown). With
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
    :param priority: fal queue priority, ``"normal"`` or ``"low"``.
    :param start_timeout: seconds fal may keep the request queued before giving up (> 1).
    :param reattach_on_retry: on a retry (or a cleared task), follow or reuse the request the
        previous try submitted instead of paying for a new one. The handle lives in the task state
        store on Airflow >= 3.3 and in an Airflow Variable on 3.1/3.2 (deleted on success there).
        A completed request is reused only when the endpoint and arguments are unchanged; set this
        to False to always generate a new video.
    """

    template_fields: Sequence[str] = ("endpoint_id", "arguments", "fal_conn_id", "webhook_url", "priority")
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
        priority: str | None = None,
        start_timeout: float | None = None,
        reattach_on_retry: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint_id = endpoint_id
        self.arguments = arguments if arguments is not None else {}
        self.fal_conn_id = fal_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = _seconds(poll_interval, "poll_interval")
        self.timeout = _seconds(timeout, "timeout")
        self.use_sse = use_sse
        self.webhook_url = webhook_url
        self.priority = priority
        self.start_timeout = start_timeout
        self.reattach_on_retry = reattach_on_retry
        if priority is not None and "{{" not in priority and priority not in ("normal", "low"):
            raise KlingConfigurationError(f"priority must be 'normal' or 'low', got {priority!r}")
        if start_timeout is not None and _seconds(start_timeout, "start_timeout") <= 1:
            raise KlingConfigurationError(f"start_timeout must be more than 1 second, got {start_timeout!r}")
        if deferrable and not wait_for_completion:
            warnings.warn(
                f"{self.task_id}: deferrable has no effect with wait_for_completion=False (nothing to wait for)",
                UserWarning,
                stacklevel=2,
            )
        self._stored: StoredRequest | None = None
        self._finished = False

    @cached_property
    def hook(self) -> KlingHook:
        from airflow_provider_kling.hooks.kling import KlingHook

        return KlingHook(fal_conn_id=self.fal_conn_id)

    # -- what to submit -------------------------------------------------------------------------

    def build_request(self) -> tuple[str, dict[str, Any]]:
        """Return ``(endpoint_id, arguments)`` from the rendered fields; typed subclasses override."""
        if not isinstance(self.endpoint_id, str) or not self.endpoint_id:
            raise KlingConfigurationError(f"endpoint_id must be a non-empty string, got {self.endpoint_id!r}")
        if not isinstance(self.arguments, Mapping):
            raise KlingConfigurationError(
                f"arguments must be a dict of the endpoint's input, got {type(self.arguments).__name__}"
            )
        return self.endpoint_id, dict(self.arguments)

    # -- execute --------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_kling.models import validate_arguments

        endpoint_id, arguments = self.build_request()
        # Bad input fails here, before any network call (and before any money is spent).
        validated = validate_arguments(endpoint_id, arguments)
        duration = completion.requested_duration(validated)
        wanted = fingerprint(endpoint_id, validated)

        state = (
            ReattachState.from_context(context, self.log, force_variable=self._force_variable_store)
            if self.reattach_on_retry
            else ReattachState(None, self.log)
        )
        decision, previous = state.decide(self.hook, state.load(), wanted)
        if decision == "reuse" and previous is not None:
            output = self._reuse(context, state, previous, duration)
            if output is not None:
                return output
            decision = "submit"
        if decision == "reattach" and previous is not None:
            stored = previous
            completion.push_request_xcoms(context, stored.request, self._dashboard_url(stored.request))
        else:
            stored = self._submit(context, state, endpoint_id, arguments, wanted)
        self._stored = stored

        if not self.wait_for_completion:
            return completion.pending_output(
                stored.request, duration=duration, cost_estimate=stored.cost_estimate
            )
        if self.deferrable:
            self._defer(context, stored)
        return self._wait_in_worker(context, state, stored, duration)

    def _submit(
        self, context: Context, state: ReattachState, endpoint_id: str, arguments: dict[str, Any], wanted: str
    ) -> StoredRequest:
        from airflow_provider_kling.models import estimate_cost, prepare_arguments

        hook = self.hook
        prepared = prepare_arguments(endpoint_id, arguments, upload=hook.upload_file)
        cost = estimate_cost(endpoint_id, prepared, prices=hook.prices)
        if cost is None:
            self.log.info("Submitting to %s (no cost estimate for this endpoint)", endpoint_id)
        else:
            self.log.info("Submitting to %s; estimated cost %s USD", endpoint_id, cost)
        request = hook.submit(
            endpoint_id,
            prepared,
            webhook_url=self.webhook_url,
            priority=self.priority,
            start_timeout=self.start_timeout,
        )
        stored = StoredRequest(
            request=request,
            fingerprint=wanted,
            submitted_at=time.time(),
            cost_estimate=completion.cost_to_str(cost),
            duration=completion.requested_duration(prepared),
        )
        # Persist first: everything after this line may crash, and the next try must find the request.
        try:
            state.save(stored)
        except Exception:
            self.log.error(
                "Could not record fal request %s for retries; cancelling it so a retry cannot pay twice",
                request.request_id,
            )
            self._cancel_quietly(request)
            raise
        self.log.info("Submitted fal request %s to %s", request.request_id, endpoint_id)
        completion.push_request_xcoms(context, request, self._dashboard_url(request))
        return stored

    def _reuse(
        self, context: Context, state: ReattachState, previous: StoredRequest, duration: float | int | None
    ) -> dict[str, Any] | None:
        output = previous.output
        if output is None:
            try:
                result = self.hook.get_result(previous.request)
            except KlingError as exc:
                self.log.warning(
                    "The result of fal request %s is no longer available (%s); submitting anew",
                    previous.request.request_id,
                    exc,
                )
                return None
            output = completion.output_from_result(
                previous.request, result, duration=duration, cost_estimate=previous.cost_estimate
            )
        completion.push_request_xcoms(context, previous.request, self._dashboard_url(previous.request))
        return self._finish(context, state, previous, output)

    def _finish(
        self, context: Context, state: ReattachState, stored: StoredRequest, output: dict[str, Any]
    ) -> dict[str, Any]:
        stored.output = output
        self._finished = True
        state.finish(stored)
        completion.publish_output(context, output, self.outlets)
        self.log.info("Video ready: %s (fal request %s)", output["video_url"], output["request_id"])
        return output

    def _dashboard_url(self, request: FalRequest) -> str | None:
        try:
            return self.hook.dashboard_url(request.request_id, request.endpoint_id)
        except Exception:  # a bad template must not fail a paid request
            self.log.warning("Could not build the fal dashboard link", exc_info=True)
            return None

    # -- waiting --------------------------------------------------------------------------------

    def _deadline(self, context: Context) -> float:
        """Epoch seconds after which waiting stops: ``timeout`` from now, capped by execution_timeout."""
        deadline = time.time() + self.timeout
        ti = context.get("ti")
        start = getattr(ti, "start_date", None)
        if self.execution_timeout is not None and start is not None:
            deadline = min(deadline, start.timestamp() + self.execution_timeout.total_seconds())
        return deadline

    def _defer(self, context: Context, stored: StoredRequest) -> None:
        end_time = self._deadline(context)
        request = stored.request
        self.defer(
            trigger=KlingRequestTrigger(
                fal_conn_id=self.fal_conn_id,
                request_id=request.request_id,
                endpoint_id=request.endpoint_id,
                status_url=request.status_url,
                response_url=request.response_url,
                cancel_url=request.cancel_url,
                poll_interval=self.poll_interval,
                end_time=end_time,
                use_sse=self.use_sse,
                submitted_at=stored.submitted_at,
            ),
            method_name="execute_complete",
            kwargs={"stored": stored.to_json()},
            timeout=timedelta(
                seconds=max(0.0, end_time - time.time()) + self.poll_interval + _BACKSTOP_MARGIN
            ),
        )

    def _wait_in_worker(
        self, context: Context, state: ReattachState, stored: StoredRequest, duration: float | int | None
    ) -> dict[str, Any]:
        request = stored.request
        progress = ProgressReporter(self.log, request.request_id, stored.submitted_at)
        remaining = max(0.001, self._deadline(context) - time.time())
        try:
            result = self.hook.wait(
                request, poll_interval=self.poll_interval, timeout=remaining, on_update=progress.update
            )
        except KlingTimeoutError as exc:
            # The hook already asked fal to cancel; say so where the user looks.
            raise KlingTimeoutError(
                f"fal request {request.request_id} did not complete within {remaining:.0f}s; "
                f"cancellation was requested. {exc}",
                request_id=request.request_id,
            ) from exc
        output = completion.output_from_result(
            request,
            result,
            duration=duration if duration is not None else stored.duration,
            cost_estimate=stored.cost_estimate,
        )
        return self._finish(context, state, stored, output)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, stored: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger fired: fetch the result in the worker or fail with fal's error.

        The resumed task is a fresh operator instance, so everything comes from the event and the
        deferral kwargs, never from attributes set in ``execute``.
        """
        event = completion.validate_event(event)
        previous = StoredRequest.from_json(stored)
        if previous is None or previous.request.request_id != event["request_id"]:
            request = self.hook.request_from_id(str(event.get("endpoint_id")), event["request_id"])
            previous = StoredRequest(request=request, fingerprint="", submitted_at=time.time())
        self._stored = previous
        request = previous.request
        state = (
            ReattachState.from_context(context, self.log, force_variable=self._force_variable_store)
            if self.reattach_on_retry
            else ReattachState(None, self.log)
        )
        self.raise_for_event(context, event, request)
        result = self.hook.get_result(request)
        output = completion.output_from_result(
            request, result, duration=previous.duration, cost_estimate=previous.cost_estimate
        )
        return self._finish(context, state, previous, output)

    def raise_for_event(self, context: Context, event: dict[str, Any], request: FalRequest) -> None:
        """Turn a ``timeout`` / ``error`` event into the matching exception (cancelling as needed)."""
        status = event["status"]
        if status == "success":
            return
        if status == "timeout":
            outcome = self._cancel_quietly(request)
            raise KlingTimeoutError(
                f"{event.get('message')}; cancellation of fal request {request.request_id} "
                f"requested ({outcome})",
                request_id=request.request_id,
            )
        if event.get("source") == "job":
            # fal reported the job as failed; its result GET carries the detailed error (e.g. the
            # 422 field list), which the hook raises as the matching KlingError subclass.
            self.hook.get_result(request)
            raise KlingRequestFailedError(
                str(event.get("message")), request_id=request.request_id, error_type=event.get("error_type")
            )
        # Polling trouble: the request may still be running. A retry that reattaches will keep
        # following it; without one, cancel it rather than leave a paid orphan.
        ti = context.get("ti")
        will_retry = ti is not None and ti.try_number <= getattr(ti, "max_tries", 0)
        if not (will_retry and self.reattach_on_retry):
            self._cancel_quietly(request)
        raise KlingError(
            str(event.get("message")), request_id=request.request_id, error_type=event.get("error_type")
        )

    def _cancel_quietly(self, request: FalRequest) -> str:
        try:
            outcome = self.hook.cancel(request)
        except Exception as exc:  # best effort: the failure being reported matters more
            self.log.warning("Could not cancel fal request %s: %s", request.request_id, exc)
            return f"cancel failed: {exc}"
        self.log.info("Cancellation of fal request %s: %s", request.request_id, outcome)
        return str(outcome)

    def on_kill(self) -> None:
        """Cancel the remote request when the task is killed while waiting in the worker."""
        if self._stored is not None and not self._finished:
            self._cancel_quietly(self._stored.request)


class KlingImageToVideoOperator(KlingVideoOperator):
    """Animate an image into a Kling video.

    :param prompt: what happens in the video (up to 2500 characters).
    :param image: the first frame: URL, data URI or local file path (uploaded first).
    :param model: Kling version: ``v1``, ``v1.5``, ``v1.6``, ``v2``, ``v2.1``, ``v2.5-turbo``, ``v2.6``.
    :param tier: ``standard``, ``pro`` or ``master`` (the combinations fal offers).
    :param duration: seconds of video, 5 or 10.
    :param aspect_ratio: ``16:9``, ``9:16`` or ``1:1`` (only where the endpoint takes it).
    :param negative_prompt: what to avoid.
    :param cfg_scale: prompt adherence, 0..1 (not on v2.6).
    :param tail_image: the last frame (pro tiers of v1, v1.5, v1.6, v2.1, v2.5-turbo; v2.6 end frame).
    :param extra_arguments: any further endpoint fields, passed as they are.
    """

    template_fields: Sequence[str] = (*KlingVideoOperator.template_fields, *_I2V_FIELDS)

    def __init__(
        self,
        *,
        prompt: str,
        image: str | Any,
        model: str = "v1.6",
        tier: str = "standard",
        duration: int | str | None = None,
        aspect_ratio: str | None = None,
        negative_prompt: str | None = None,
        cfg_scale: float | None = None,
        tail_image: str | Any | None = None,
        extra_arguments: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.image = image
        self.model = model
        self.tier = tier
        self.duration = duration
        self.aspect_ratio = aspect_ratio
        self.negative_prompt = negative_prompt
        self.cfg_scale = cfg_scale
        self.tail_image = tail_image
        self.extra_arguments = extra_arguments
        _check_early(self, _I2V_FIELDS)

    def build_request(self) -> tuple[str, dict[str, Any]]:
        return image_to_video_request(
            model=self.model,
            tier=self.tier,
            prompt=self.prompt,
            image=self.image,
            tail_image=self.tail_image,
            duration=self.duration,
            aspect_ratio=self.aspect_ratio,
            negative_prompt=self.negative_prompt,
            cfg_scale=self.cfg_scale,
            extra=self.extra_arguments,
        )


class KlingTextToVideoOperator(KlingVideoOperator):
    """Generate a Kling video from a text prompt.

    :param prompt: what happens in the video (up to 2500 characters).
    :param model: Kling version: ``v1``, ``v1.5``, ``v1.6``, ``v2``, ``v2.1``, ``v2.5-turbo``, ``v2.6``.
    :param tier: ``standard``, ``pro`` or ``master`` (the combinations fal offers).
    :param duration: seconds of video, 5 or 10.
    :param aspect_ratio: ``16:9``, ``9:16`` or ``1:1``.
    :param negative_prompt: what to avoid.
    :param cfg_scale: prompt adherence, 0..1.
    :param camera_control: a camera preset (``down_back``, ``forward_up``, ``right_turn_forward``,
        ``left_turn_forward``; v1 standard).
    :param advanced_camera_control: ``{"movement_type": "pan", "movement_value": 5}`` (v1 standard).
    :param extra_arguments: any further endpoint fields, passed as they are.
    """

    template_fields: Sequence[str] = (*KlingVideoOperator.template_fields, *_T2V_FIELDS)

    def __init__(
        self,
        *,
        prompt: str,
        model: str = "v1.6",
        tier: str = "standard",
        duration: int | str | None = None,
        aspect_ratio: str | None = None,
        negative_prompt: str | None = None,
        cfg_scale: float | None = None,
        camera_control: str | None = None,
        advanced_camera_control: Mapping[str, Any] | None = None,
        extra_arguments: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.model = model
        self.tier = tier
        self.duration = duration
        self.aspect_ratio = aspect_ratio
        self.negative_prompt = negative_prompt
        self.cfg_scale = cfg_scale
        self.camera_control = camera_control
        self.advanced_camera_control = advanced_camera_control
        self.extra_arguments = extra_arguments
        _check_early(self, _T2V_FIELDS)

    def build_request(self) -> tuple[str, dict[str, Any]]:
        return text_to_video_request(
            model=self.model,
            tier=self.tier,
            prompt=self.prompt,
            duration=self.duration,
            aspect_ratio=self.aspect_ratio,
            negative_prompt=self.negative_prompt,
            cfg_scale=self.cfg_scale,
            camera_control=self.camera_control,
            advanced_camera_control=self.advanced_camera_control,
            extra=self.extra_arguments,
        )


class KlingLipSyncOperator(KlingVideoOperator):
    """Lip-sync a video of a person to speech: either ``audio`` or ``text`` + ``voice_id``.

    :param video: the video (URL or local path): a person's face, 2-10 s, 720p/1080p.
    :param audio: speech to sync to (URL or local path); picks ``lipsync/audio-to-video``.
    :param text: words to speak (up to 120 characters); picks ``lipsync/text-to-video``.
    :param voice_id: one of fal's Kling voice ids (with ``text``).
    :param voice_language: ``en`` or ``zh`` (with ``text``).
    :param voice_speed: 0.8..2.0 (with ``text``).
    :param extra_arguments: any further endpoint fields, passed as they are.
    """

    template_fields: Sequence[str] = (*KlingVideoOperator.template_fields, *_LIPSYNC_FIELDS)

    def __init__(
        self,
        *,
        video: str | Any,
        audio: str | Any | None = None,
        text: str | None = None,
        voice_id: str | None = None,
        voice_language: str | None = None,
        voice_speed: float | None = None,
        extra_arguments: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.video = video
        self.audio = audio
        self.text = text
        self.voice_id = voice_id
        self.voice_language = voice_language
        self.voice_speed = voice_speed
        self.extra_arguments = extra_arguments
        _check_early(self, _LIPSYNC_FIELDS)

    def build_request(self) -> tuple[str, dict[str, Any]]:
        return lipsync_request(
            video=self.video,
            audio=self.audio,
            text=self.text,
            voice_id=self.voice_id,
            voice_language=self.voice_language,
            voice_speed=self.voice_speed,
            extra=self.extra_arguments,
        )


class KlingVideoEffectsOperator(KlingVideoOperator):
    """Apply a Kling video effect (hug, kiss, squish, ...) to one or two images.

    :param effect_scene: the effect name, e.g. ``hug`` (two images) or ``squish`` (one image).
    :param images: one image, or a list of images (URLs or local paths).
    :param model: ``v1``, ``v1.5`` or ``v1.6``.
    :param tier: ``standard`` or ``pro`` (v1: standard; v1.5: pro; v1.6: both).
    :param duration: seconds of video, 5 or 10.
    :param extra_arguments: any further endpoint fields, passed as they are.
    """

    template_fields: Sequence[str] = (*KlingVideoOperator.template_fields, *_EFFECTS_FIELDS)

    def __init__(
        self,
        *,
        effect_scene: str,
        images: str | Any | Sequence[Any] | None = None,
        model: str = "v1.6",
        tier: str = "standard",
        duration: int | str | None = None,
        extra_arguments: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.effect_scene = effect_scene
        self.images = images
        self.model = model
        self.tier = tier
        self.duration = duration
        self.extra_arguments = extra_arguments
        _check_early(self, _EFFECTS_FIELDS)

    def build_request(self) -> tuple[str, dict[str, Any]]:
        return video_effects_request(
            model=self.model,
            tier=self.tier,
            effect_scene=self.effect_scene,
            images=self.images,
            duration=self.duration,
            extra=self.extra_arguments,
        )


def _is_lazy(value: Any) -> bool:
    """True for values only known at run time (Jinja strings, XComArgs, ObjectStoragePaths...)."""
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, Mapping):
        return any(_is_lazy(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_is_lazy(v) for v in value)
    return type(value).__module__.startswith("airflow.")


def _check_early(op: KlingVideoOperator, fields: tuple[str, ...]) -> None:
    """Fail at DAG parse time on an impossible combination, unless a value is only known later."""
    if not any(_is_lazy(getattr(op, name)) for name in fields):
        op.build_request()
