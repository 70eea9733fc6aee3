"""File inputs: accept URLs, data URIs, local files, bytes and ObjectStoragePath; check them cheaply.

Every URL-typed field of a request model takes one of:

* an ``http://`` / ``https://`` URL — sent as is (not downloaded: no network before submit);
* a ``data:<mime>;base64,...`` URI — checked (MIME type, base64, size, image header) and sent as is;
* a local path (``str`` or :class:`os.PathLike`), ``bytes``, or an Airflow ``ObjectStoragePath``
  (``s3://…``, ``file://…``; any object with ``open``/``exists``/``protocol``) — checked, then
  uploaded with the caller's ``upload`` callable right before submit and replaced by its URL.

A plain *string* with any other scheme (``ftp://``, ``s3://``, ``gs://``, even ``file://``) is an
error: a string is either a URL fal can fetch or a local path, and fal fetches http(s) only.
Wrap remote storage in ``ObjectStoragePath("s3://…")`` to have it uploaded.

Checks (before anything is uploaded or submitted):

* URLs: a host, no whitespace, and no ``user:password@`` credentials (they would reach fal, its
  logs and ours; the error never repeats the URL).
* images: JPEG, PNG or WebP, at most 10 MB, shorter side at least 300 px, aspect ratio between
  1:2.5 and 2.5:1 — Kling's upstream rule (kling-endpoints.md §4); fal's v1-v2.6 schemas state
  none, fal's newer Kling pages state the same numbers. The pixels are decoded once (a truncated
  or corrupt file has a valid header and would otherwise fail only at fal, after the submit).
* videos: MP4 or MOV (an ``ftyp`` box), at most 100 MB (Kling lip-sync rule, applied to every video input).
* audio: a recognised audio header (MP3, AAC, WAV, M4A, OGG, FLAC, WebM), at most 5 MB (Kling
  lip-sync rule).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import mimetypes
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from airflow_provider_kling.models.common import FileKind
from airflow_provider_kling.models.errors import Loc, short_repr

MB = 1024 * 1024
PLACEHOLDER_PREFIX = "https://upload.invalid/kling-pending/"

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_DATA_URI = re.compile(r"^data:([^;,]*)((?:;[^;,]*)*),(.*)$", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class FileRule:
    """Cheap local checks for one kind of media input."""

    kind: FileKind
    max_bytes: int | None = None
    image_formats: frozenset[str] = frozenset()
    data_mime_types: frozenset[str] = frozenset()
    min_side: int | None = None
    min_ratio: float | None = None
    max_ratio: float | None = None


RULES: dict[str, FileRule] = {
    "image": FileRule(
        "image",
        max_bytes=10 * MB,
        image_formats=frozenset({"JPEG", "PNG", "WEBP"}),
        data_mime_types=frozenset({"image/jpeg", "image/jpg", "image/png", "image/webp"}),
        min_side=300,
        min_ratio=1 / 2.5,
        max_ratio=2.5,
    ),
    "video": FileRule(
        "video", max_bytes=100 * MB, data_mime_types=frozenset({"video/mp4", "video/quicktime"})
    ),
    "audio": FileRule("audio", max_bytes=5 * MB),
    "any": FileRule("any"),
}

_IMAGE_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@dataclass
class PendingUpload:
    """A file input that will be uploaded right before submit.

    :param loc: where it sits in the arguments, e.g. ``("dynamic_masks", 0, "mask_url")``.
    :param source: a :class:`~pathlib.Path`, ``bytes`` or an ObjectStoragePath.
    :param content_type: MIME type sniffed from the content.
    :param file_name: name given to the upload.
    :param key: identity of the content, so one file used twice is uploaded once.
    """

    loc: Loc
    source: Any
    original: Any
    content_type: str
    file_name: str
    key: tuple[str, str]


def file_error(loc: Loc, msg: str, type_: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": type_}


# ---------------------------------------------------------------------------------------------
# Walking the URL-typed slots of an argument dict


def iter_slots(data: Any, path: str) -> Iterator[tuple[Loc, Any, Any]]:
    """Yield ``(loc, container, key)`` for every value at ``path`` (``"a[].b"`` syntax)."""

    def walk(node: Any, parts: list[str], loc: Loc) -> Iterator[tuple[Loc, Any, Any]]:
        head, rest = parts[0], parts[1:]
        name = head.removesuffix("[]")
        if not isinstance(node, dict) or node.get(name) is None:
            return
        value = node[name]
        if head.endswith("[]"):
            if not isinstance(value, list):
                return  # the model reports the type error
            for i, item in enumerate(value):
                if rest:
                    yield from walk(item, rest, (*loc, name, i))
                elif item is not None:
                    yield (*loc, name, i), value, i
        elif rest:
            yield from walk(value, rest, (*loc, name))
        else:
            yield (*loc, name), node, name

    yield from walk(data, path.split("."), ())


def copy_tree(value: Any) -> Any:
    """Copy dicts and lists (tuples become lists) so slots can be replaced; leaves are shared."""
    if isinstance(value, dict):
        return {k: copy_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [copy_tree(v) for v in value]
    return value


def set_at(data: Any, loc: Loc, value: Any) -> None:
    """Replace the value at ``loc`` inside nested dicts/lists."""
    for part in loc[:-1]:
        data = data[part]
    data[loc[-1]] = value


# ---------------------------------------------------------------------------------------------
# Content checks


def _is_object_storage_path(value: Any) -> bool:
    # Duck-typed so that importing this module never imports airflow (DAG parsing cost), and so
    # that any universal_pathlib UPath works too. Not excluded for being os.PathLike: Airflow
    # 3.1's ObjectStoragePath is one, and its __fspath__ gives the URL, not a local path.
    return (
        not isinstance(value, (str, bytes, bytearray, memoryview))
        and callable(getattr(value, "open", None))
        and callable(getattr(value, "exists", None))
        and hasattr(value, "protocol")
    )


def _sniff_video(head: bytes) -> str | None:
    if head[4:8] != b"ftyp":
        return None
    return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"


def _sniff_audio(head: bytes) -> str | None:
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # An MPEG audio frame sync (11 bits set): layer bits 00 mean ADTS (AAC), others MP1-3.
        return "audio/aac" if head[1] & 0x06 == 0 else "audio/mpeg"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp":
        return "audio/mp4"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "audio/webm"
    return None


def _check_image(
    loc: Loc, fh: BinaryIO, rule: FileRule, label: str
) -> tuple[str | None, list[dict[str, Any]]]:
    # Pillow imported here, not at module level: the models package is imported while DAGs parse.
    from PIL import Image

    try:
        img = Image.open(fh)
    except Image.DecompressionBombError:
        return None, [file_error(loc, f"{label}: image dimensions are implausibly large", "image_too_large")]
    except Exception:  # Pillow raises several types for unreadable data
        return None, [
            file_error(loc, f"{label}: not a readable image (JPEG, PNG or WebP expected)", "image_load_error")
        ]
    with img:
        fmt, (width, height) = img.format, img.size
        if fmt in rule.image_formats:
            # Decode the pixels: a cut-off download keeps a valid header, and fal only finds out
            # after the submit. Pillow's MAX_IMAGE_PIXELS bomb guard applies; ≤ 10 MB files.
            try:
                img.load()
            except Image.DecompressionBombError:
                return None, [
                    file_error(loc, f"{label}: image dimensions are implausibly large", "image_too_large")
                ]
            except Exception as err:  # OSError "image file is truncated", SyntaxError, zlib errors
                return None, [
                    file_error(
                        loc,
                        f"{label}: the {fmt} image data is truncated or corrupt "
                        f"({type(err).__name__}); the header is valid but the pixels cannot be decoded",
                        "image_corrupt",
                    )
                ]
    errors = []
    if fmt not in rule.image_formats:
        errors.append(
            file_error(
                loc, f"{label}: image format {fmt} is not accepted (JPEG, PNG or WebP)", "image_format"
            )
        )
    if rule.min_side is not None and min(width, height) < rule.min_side:
        errors.append(
            file_error(
                loc,
                f"{label}: image is {width}x{height} px; "
                f"width and height must be at least {rule.min_side} px",
                "image_too_small",
            )
        )
    elif rule.min_ratio is not None and rule.max_ratio is not None and height:
        ratio = width / height
        if not rule.min_ratio - 1e-9 <= ratio <= rule.max_ratio + 1e-9:
            errors.append(
                file_error(
                    loc,
                    f"{label}: aspect ratio {ratio:.2f} ({width}x{height}) "
                    "is outside 1:2.5 … 2.5:1 (0.40 … 2.50)",
                    "image_aspect_ratio",
                )
            )
    return _IMAGE_MIME.get(fmt or ""), errors


def check_content(
    loc: Loc, fh: BinaryIO, size: int | None, rule: FileRule, label: str, name: str | None
) -> tuple[str, list[dict[str, Any]]]:
    """Check one file's size and header; return its sniffed MIME type and any errors."""
    if size == 0:
        return "application/octet-stream", [file_error(loc, f"{label}: file is empty", "file_empty")]
    if rule.max_bytes is not None and size is not None and size > rule.max_bytes:
        return "application/octet-stream", [
            file_error(
                loc,
                f"{label}: file is {size / MB:.1f} MB; at most {rule.max_bytes // MB} MB",
                "file_too_large",
            )
        ]
    guessed = (mimetypes.guess_type(name)[0] if name else None) or "application/octet-stream"
    if rule.kind == "image":
        mime, errors = _check_image(loc, fh, rule, label)
        return mime or guessed, errors
    head = fh.read(16)
    if rule.kind == "video":
        mime = _sniff_video(head)
        if mime is None:
            return guessed, [file_error(loc, f"{label}: not an MP4 or MOV video", "video_format")]
        return mime, []
    if rule.kind == "audio":
        mime = _sniff_audio(head)
        if mime is None:
            return guessed, [
                file_error(
                    loc,
                    f"{label}: not a recognised audio file (MP3, AAC, WAV, M4A, OGG, FLAC or WebM expected)",
                    "audio_format",
                )
            ]
        return mime, []
    return guessed, []


# ---------------------------------------------------------------------------------------------
# One input value


def _upload_name(loc: Loc, mime: str) -> str:
    field = next((str(p) for p in reversed(loc) if isinstance(p, str)), "file")
    stem = field.removesuffix("_urls").removesuffix("_url") or "file"
    ext = {"image/jpeg": ".jpg", "audio/mpeg": ".mp3", "video/quicktime": ".mov"}.get(mime)
    return stem + (ext or mimetypes.guess_extension(mime) or ".bin")


def _check_url(loc: Loc, value: str) -> list[dict[str, Any]]:
    parts = urlsplit(value)
    if "@" in parts.netloc:
        # Never echo the URL: the point is to keep the password out of fal's logs and ours.
        return [
            file_error(
                loc,
                "URL contains user:password@ credentials, which would be sent to fal and written to "
                "logs; use a pre-signed URL, a local file or an ObjectStoragePath instead",
                "url_credentials",
            )
        ]
    if not parts.netloc or any(c.isspace() for c in value):
        return [file_error(loc, f"not a valid URL: {short_repr(value)}", "url_parsing")]
    return []


def _check_data_uri(loc: Loc, value: str, rule: FileRule) -> list[dict[str, Any]]:
    match = _DATA_URI.match(value)
    if match is None:
        return [file_error(loc, "malformed data URI (expected data:<mime>;base64,<data>)", "data_uri")]
    mime, params, payload = match.group(1).lower(), match.group(2).lower(), match.group(3)
    if rule.data_mime_types and mime not in rule.data_mime_types:
        accepted = ", ".join(sorted(rule.data_mime_types))
        return [
            file_error(loc, f"data URI type {mime or '(none)'!r} is not accepted ({accepted})", "data_uri")
        ]
    if rule.kind == "audio" and not mime.startswith("audio/"):
        return [file_error(loc, f"data URI type {mime or '(none)'!r} is not audio/*", "data_uri")]
    if ";base64" not in params:
        return [file_error(loc, "data URI must be base64-encoded (data:<mime>;base64,...)", "data_uri")]
    try:
        raw = base64.b64decode(re.sub(r"\s+", "", payload), validate=True)
    except (binascii.Error, ValueError):
        return [file_error(loc, "data URI payload is not valid base64", "data_uri")]
    _, errors = check_content(loc, io.BytesIO(raw), len(raw), rule, "data URI", None)
    return errors


def inspect_value(loc: Loc, value: Any, rule: FileRule) -> tuple[PendingUpload | None, list[dict[str, Any]]]:
    """Classify and check one file input.

    Returns ``(None, [])`` for values sent as they are (URLs, data URIs, and non-file values the
    model will reject with a type error), a :class:`PendingUpload` for files to upload, or errors.
    """
    if isinstance(value, str):
        lowered = value[:8].lower()
        if lowered.startswith(("http://", "https://")):
            return None, _check_url(loc, value)
        if lowered.startswith("data:"):
            return None, _check_data_uri(loc, value, rule)
        scheme = _SCHEME.match(value)
        if scheme:
            return None, [
                file_error(
                    loc,
                    f"unsupported URL scheme {scheme.group(1)!r}; give an http(s) or data: URL, "
                    "a local path, or wrap remote storage in airflow.sdk.ObjectStoragePath "
                    "to have it uploaded",
                    "url_scheme",
                )
            ]
        if not value.strip():
            return None, [
                file_error(loc, "must not be empty (give a URL, a data URI or a local path)", "file_empty")
            ]
        return _inspect_local(loc, Path(value).expanduser(), value, rule)
    if _is_object_storage_path(value):  # before os.PathLike, which it may also be (see there)
        return _inspect_object_storage(loc, value, rule)
    if isinstance(value, os.PathLike):
        return _inspect_local(loc, Path(os.fspath(value)).expanduser(), value, rule)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        mime, errors = check_content(loc, io.BytesIO(data), len(data), rule, "bytes", None)
        key = ("bytes", hashlib.sha256(data).hexdigest())
        return PendingUpload(loc, data, value, mime, _upload_name(loc, mime), key), errors
    return None, []


def _inspect_local(loc: Loc, path: Path, original: Any, rule: FileRule) -> tuple[PendingUpload | None, list]:
    if not path.exists():
        return None, [file_error(loc, f"local file not found: {path}", "file_not_found")]
    if not path.is_file():
        return None, [file_error(loc, f"not a regular file: {path}", "file_not_found")]
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            mime, errors = check_content(loc, fh, size, rule, str(path), path.name)
    except OSError as err:
        return None, [file_error(loc, f"cannot read {path}: {err.strerror or err}", "file_unreadable")]
    key = ("path", str(path.resolve()))
    return PendingUpload(loc, path, original, mime, path.name, key), errors


def _inspect_object_storage(loc: Loc, value: Any, rule: FileRule) -> tuple[PendingUpload | None, list]:
    label = str(value)
    try:
        if not value.exists():
            return None, [file_error(loc, f"object not found: {label}", "file_not_found")]
        try:
            size: int | None = int(value.stat().st_size)
        except Exception:  # not every filesystem reports a size; the upload will tell
            size = None
        with value.open("rb") as fh:
            mime, errors = check_content(loc, fh, size, rule, label, getattr(value, "name", None))
    except Exception as err:  # fsspec backends raise their own types
        return None, [file_error(loc, f"cannot read {label}: {type(err).__name__}", "file_unreadable")]
    name = getattr(value, "name", None) or _upload_name(loc, mime)
    return PendingUpload(loc, value, value, mime, name, ("object", label)), errors


# ---------------------------------------------------------------------------------------------
# Whole argument dicts


def collect_file_inputs(
    data: dict[str, Any], file_fields: dict[str, FileKind]
) -> tuple[list[PendingUpload], list[dict[str, Any]]]:
    """Check every file input of ``data`` (a copy, modified in place).

    Values to upload, and values that failed a check, are replaced by placeholder URLs so the
    request model validates everything else and reports all problems at once.
    """
    pending: list[PendingUpload] = []
    errors: list[dict[str, Any]] = []
    for path, kind in file_fields.items():
        for loc, container, key in list(iter_slots(data, path)):
            upload, errs = inspect_value(loc, container[key], RULES[kind])
            errors.extend(errs)
            if upload is not None:
                pending.append(upload)
            if upload is not None or errs:
                container[key] = PLACEHOLDER_PREFIX + "/".join(map(str, loc))
    return pending, errors


def guess_file_fields(data: dict[str, Any]) -> dict[str, FileKind]:
    """For endpoints we do not type: top-level ``*_url`` / ``*_urls`` keys are file inputs."""
    fields: dict[str, FileKind] = {}
    for key, value in data.items():
        if key.endswith("_urls") and isinstance(value, list):
            fields[f"{key}[]"] = "any"
        elif key.endswith("_url"):
            fields[key] = "any"
    return fields


def run_uploads(payload: dict[str, Any], pending: list[PendingUpload], upload: Callable[..., str]) -> None:
    """Upload every pending file once and put the returned URLs into ``payload``."""
    done: dict[tuple[str, str], str] = {}
    for item in pending:
        if item.key not in done:
            if _is_object_storage_path(item.source):
                with item.source.open("rb") as fh:
                    url = upload(fh, content_type=item.content_type, file_name=item.file_name)
            else:
                url = upload(item.source, content_type=item.content_type, file_name=item.file_name)
            done[item.key] = str(url)
        set_at(payload, item.loc, done[item.key])
