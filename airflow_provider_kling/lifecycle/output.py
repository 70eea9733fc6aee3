"""The small dict every Kling task returns: built from fal's result, and read back by later tasks.

Only URLs and metadata ever go into it (never the video bytes); :func:`parse_source` reads it (or a
plain URL, or fal's own output) back for the storage operator and lineage.
"""

from __future__ import annotations

import ast
import json
import posixpath
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_kling.exceptions import KlingServerError
from airflow_provider_kling.protocol.types import FalRequest

OUTPUT_KEYS = (
    "request_id",
    "endpoint_id",
    "video_url",
    "content_type",
    "file_name",
    "file_size",
    "duration",
    "cost_estimate",
)


def requested_duration(arguments: Mapping[str, Any] | None) -> float | int | None:
    """Seconds of video asked for (fal takes ``duration`` as a string such as ``"5"``)."""
    raw = (arguments or {}).get("duration")
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return int(value) if value.is_integer() else value


def cost_to_str(cost: Decimal | None) -> str | None:
    return None if cost is None else str(cost)


def pending_output(
    request: FalRequest, *, duration: float | int | None = None, cost_estimate: str | None = None
) -> dict[str, Any]:
    """The return dict before the video exists (``wait_for_completion=False``): video fields are None."""
    return {
        "request_id": request.request_id,
        "endpoint_id": request.endpoint_id,
        "video_url": None,
        "content_type": None,
        "file_name": None,
        "file_size": None,
        "duration": duration,
        "cost_estimate": cost_estimate,
    }


def output_from_result(
    request: FalRequest,
    result: Mapping[str, Any],
    *,
    duration: float | int | None = None,
    cost_estimate: str | None = None,
) -> dict[str, Any]:
    """Reduce fal's result (``{"video": {"url": ...}}``) to the small dict tasks return.

    Only URLs and metadata: never the video bytes (a result may inline them as ``file_data``).
    """
    video = result.get("video") if isinstance(result, Mapping) else None
    if not isinstance(video, Mapping) or not isinstance(video.get("url"), str) or not video["url"]:
        keys = sorted(result) if isinstance(result, Mapping) else type(result).__name__
        raise KlingServerError(
            f"fal request {request.request_id} completed but its result has no video URL (keys: {keys})",
            request_id=request.request_id,
        )
    output = pending_output(request, duration=duration, cost_estimate=cost_estimate)
    file_size = video.get("file_size")
    output.update(
        video_url=video["url"],
        content_type=video.get("content_type"),
        file_name=video.get("file_name"),
        file_size=file_size if isinstance(file_size, int) else None,
    )
    return output


class VideoSource:
    """Where a video comes from: its URL plus whatever the Kling operator knew about it.

    :param url: the media URL (fal CDN or any http(s) URL).
    :param info: the source dict (Kling operator return value) or ``{}`` for a plain URL.
    """

    def __init__(self, url: str, info: Mapping[str, Any]) -> None:
        self.url = url
        self.info = dict(info)

    @property
    def request_id(self) -> str | None:
        value = self.info.get("request_id")
        return str(value) if value else None

    @property
    def file_size(self) -> int | None:
        value = self.info.get("file_size")
        return int(value) if isinstance(value, int | str) and str(value).isdigit() else None

    @property
    def content_type(self) -> str | None:
        value = self.info.get("content_type")
        return str(value) if value else None

    @property
    def suffix(self) -> str:
        url_name = posixpath.basename(urlsplit(self.url).path)
        given = str(self.info.get("file_name") or url_name or "video.mp4")
        return posixpath.splitext(given)[1] or ".mp4"

    def file_name(self) -> str | None:
        """Name for a file saved into a folder: ``<request_id>.mp4``, or None when the request is
        unknown (the file is then named after its content). Never fal's ``file_name`` or the URL's
        name: every Kling output is called ``output.mp4``, and one run would replace the last."""
        return f"{self.request_id}{self.suffix}" if self.request_id else None


def parse_source(source: Any) -> VideoSource:
    """Accept a URL, a Kling operator return dict, fal's raw ``{"video": {...}}`` output, or
    either dict rendered to text by Jinja (``"{{ ti.xcom_pull('generate') }}"`` gives its repr).

    :param source: the operator's rendered ``source`` field.
    """
    if isinstance(source, str):
        text = source.strip()
        if text.startswith("{"):
            source = _parse_mapping_text(text)
        elif text:
            return VideoSource(text, {})
    if isinstance(source, Mapping):
        info = dict(source)
        video = info.get("video")
        if isinstance(video, Mapping):  # fal's own output shape
            info = {**{k: v for k, v in info.items() if k != "video"}, **_fal_file_info(video)}
        url = info.get("video_url") or info.get("url")
        if not url:
            hint = ""
            if "request_id" in info:
                hint = (
                    " (the Kling task probably ran with wait_for_completion=False: wait for the request"
                    " with KlingRequestSensor and persist the sensor's output instead)"
                )
            raise ValueError(f"source: no video URL in {sorted(info)}; expected key 'video_url'{hint}")
        return VideoSource(str(url), info)
    raise TypeError(
        f"source: expected a video URL or the Kling operator's result dict, got {type(source).__name__}"
    )


def _fal_file_info(video: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "video_url": video.get("url"),
        "content_type": video.get("content_type"),
        "file_name": video.get("file_name"),
        "file_size": video.get("file_size"),
    }


def _parse_mapping_text(text: str) -> Mapping[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)  # Python repr, as Jinja renders a dict
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"source: could not parse {text[:80]!r} as a dict ({exc})") from None
    if not isinstance(value, Mapping):
        raise ValueError(f"source: expected a dict, got {type(value).__name__}")
    return value
