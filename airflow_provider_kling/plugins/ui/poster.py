"""First-frame posters of persisted videos (PyAV when installed; otherwise the player shows the frame)."""

from __future__ import annotations

import io
import logging
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)


def available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def first_frame_jpeg(path: Path) -> bytes | None:
    stat = path.stat()
    return _first_frame(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _first_frame(path: str, mtime_ns: int, size: int) -> bytes | None:
    try:
        import av

        with av.open(path) as container:
            frame = next(container.decode(video=0))
            image = frame.to_image()
    except Exception as exc:  # a file PyAV cannot read just has no poster
        log.info("No poster for %s: %s", path, exc)
        return None
    image.thumbnail((960, 960))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=80)
    return out.getvalue()
