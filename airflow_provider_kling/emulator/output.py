"""Turn a finished job's arguments into fal's output JSON, writing the clip into the store.

Runs in a worker thread (encoding is CPU work that must not block the event loop).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_kling.emulator.storage import Storage
from airflow_provider_kling.emulator.validation import input_image, local_file
from airflow_provider_kling.emulator.video import (
    ClipSpec,
    probe_duration,
    size_for_aspect,
    size_for_image,
    write_mp4,
)

DEFAULT_DURATION = 5.0
MAX_DURATION = 15.0


def clip_duration(
    endpoint_id: str, arguments: dict[str, Any], storage: Storage, own_netlocs: set[str]
) -> float:
    """Requested ``duration`` ("5"/"10"/...); lipsync follows its input video (2-10 s), else 5 s."""
    if "lipsync" in endpoint_id:
        video_url = arguments.get("video_url")
        found = local_file(video_url, storage, own_netlocs) if isinstance(video_url, str) else None
        probed = probe_duration(found.path) if found is not None else None
        return min(max(probed or DEFAULT_DURATION, 2.0), 10.0)
    try:
        duration = float(arguments.get("duration", DEFAULT_DURATION))
    except (TypeError, ValueError):
        duration = DEFAULT_DURATION
    return min(max(duration, 1.0), MAX_DURATION)


def render_output(
    endpoint_id: str, arguments: Any, storage: Storage, own_netlocs: set[str], base_url: str, fps: int
) -> dict[str, Any]:
    """Encode the clip and return ``{"video": {url, content_type, file_name, file_size}}``."""
    args = arguments if isinstance(arguments, dict) else {}
    image = input_image(args, storage, own_netlocs)
    size = size_for_image(*image.size) if image is not None else size_for_aspect(args.get("aspect_ratio"))
    spec = ClipSpec(
        duration=clip_duration(endpoint_id, args, storage, own_netlocs),
        size=size,
        image=image,
        text=str(args.get("prompt") or args.get("text") or args.get("effect_scene") or endpoint_id),
        fps=fps,
    )
    key, path = storage.new_key("output.mp4")
    write_mp4(spec, path)
    stored = storage.register(key, "video/mp4")
    return {
        "video": {
            "url": f"{base_url}/cdn/files/{key}",
            "content_type": "video/mp4",
            "file_name": "output.mp4",
            "file_size": stored.size,
        }
    }
