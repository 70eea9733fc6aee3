"""Write the emulator's generated clips: small, real, playable H.264 MP4 files.

Frames come from the job's input image (a slow zoom) or, for text-to-video, from a rendered
gradient card with the prompt on it (a slow pan). Sizes are tiny and the frame rate low so a
10 s clip encodes in a fraction of a second: the emulator must stay fast for tests.
PyAV, numpy and Pillow are imported lazily so that starting the emulator stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

FPS = 8
# Long side of generated frames. H.264 in yuv420p needs even dimensions.
LONG_SIDE = 256
SIZES: dict[str, tuple[int, int]] = {
    "16:9": (256, 144),
    "9:16": (144, 256),
    "1:1": (192, 192),
}
DEFAULT_ASPECT = "16:9"


@dataclass(frozen=True)
class ClipSpec:
    """What to render.

    :param duration: clip length in seconds.
    :param size: (width, height), both even.
    :param image: optional source image (frames are a slow zoom into it).
    :param text: caption for generated frames when there is no image.
    :param fps: frames per second.
    """

    duration: float
    size: tuple[int, int]
    image: Image.Image | None = None
    text: str = ""
    fps: int = FPS

    @property
    def frame_count(self) -> int:
        return max(1, round(self.duration * self.fps))


def _even(value: float) -> int:
    return max(16, round(value / 2.0) * 2)


def size_for_aspect(aspect_ratio: str | None) -> tuple[int, int]:
    """Frame size for fal's ``aspect_ratio`` values; unknown values fall back to 16:9."""
    return SIZES.get(aspect_ratio or DEFAULT_ASPECT, SIZES[DEFAULT_ASPECT])


def size_for_image(width: int, height: int) -> tuple[int, int]:
    """Follow the input image's aspect ratio, long side :data:`LONG_SIDE`."""
    # Kling accepts aspect ratios 1:2.5 .. 2.5:1; clamp so frames never get silly.
    ratio = min(max(width / max(height, 1), 0.4), 2.5)
    if ratio >= 1:
        return LONG_SIDE, _even(LONG_SIDE / ratio)
    return _even(LONG_SIDE * ratio), LONG_SIDE


def _title_card(size: tuple[int, int], text: str) -> Image.Image:
    """A diagonal gradient with the prompt written on it, a bit larger than the frame (for panning)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    width, height = int(size[0] * 1.25), int(size[1] * 1.25)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (xs / width + ys / height) / 2.0
    rgb = np.stack([40 + 160 * t, 60 + 80 * (1 - t), 140 + 100 * np.sin(t * math.pi)], axis=-1)
    card = Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(card)
    font = ImageFont.load_default(size=max(10, size[1] // 12))
    words, lines, line = (text or "fal emulator").split(), [], ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) > width * 0.8 and line:
            lines.append(line)
            line = word
        else:
            line = candidate
    lines.append(line)
    draw.multiline_text(
        (width // 2, height // 2), "\n".join(lines[:6]), font=font, fill="white", anchor="mm", align="center"
    )
    return card


def _frames(spec: ClipSpec):  # -> Iterator[np.ndarray]
    import numpy as np
    from PIL import Image

    width, height = spec.size
    count = spec.frame_count
    if spec.image is not None:
        # Work from a source only ~2x the frame size: resizing the original every frame is wasteful.
        source = spec.image.convert("RGB")
        source.thumbnail((width * 2, height * 2))
        sw, sh = source.size
        # The largest centred crop with the frame's aspect ratio, then zoom in by up to 20 %.
        crop_w, crop_h = (sw, sw * height / width) if sw / sh <= width / height else (sh * width / height, sh)
        for i in range(count):
            zoom = 1.0 + 0.2 * i / max(count - 1, 1)
            cw, ch = crop_w / zoom, crop_h / zoom
            box = ((sw - cw) / 2, (sh - ch) / 2, (sw + cw) / 2, (sh + ch) / 2)
            yield np.asarray(source.resize((width, height), Image.Resampling.BILINEAR, box=box))
    else:
        card = _title_card(spec.size, spec.text)
        cw, ch = card.size
        for i in range(count):
            # Pan diagonally across the oversized card.
            f = i / max(count - 1, 1)
            left, top = int((cw - width) * f), int((ch - height) * f)
            yield np.asarray(card.crop((left, top, left + width, top + height)))


#: What generating clips imports (lazily); all must be importable before the emulator starts.
VIDEO_LIBRARIES = {"av": "PyAV", "numpy": "numpy"}


class MissingVideoLibrariesError(RuntimeError):
    """The emulator cannot write MP4 files: PyAV or numpy is not installed."""


def require_video_libraries() -> None:
    """Refuse to start without PyAV/numpy: otherwise every job would end COMPLETED with a 500
    ``internal_error`` at result time, far from the cause.

    :raises MissingVideoLibrariesError: naming the missing packages and the install command.
    """
    import importlib.util

    missing = []
    for module, package in VIDEO_LIBRARIES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(package)
    if missing:
        raise MissingVideoLibrariesError(
            f"The fal emulator writes real MP4 files and needs {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed: "
            "pip install 'airflow-provider-kling[emulator]'"
        )


def write_mp4(spec: ClipSpec, path: Path) -> int:
    """Encode ``spec`` as H.264/yuv420p MP4 at ``path``; returns the file size in bytes."""
    from fractions import Fraction

    import av

    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(spec.fps, 1))
        stream.width, stream.height = spec.size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        for array in _frames(spec):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path.stat().st_size


def probe_duration(path: Path) -> float | None:
    """Duration in seconds of a media file, or None when it can't be read (lipsync inputs)."""
    try:
        import av

        with av.open(str(path)) as container:
            if container.duration is not None:
                return container.duration / 1_000_000
    except Exception:
        return None
    return None
