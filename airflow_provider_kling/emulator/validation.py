"""Input checks the emulator applies at processing time, the way fal does: never at submit.

Schema rules come from the models package (``fal_validation_errors``), imported lazily and
optional, so the emulator works before and without it. On top, input files that point at the
emulator's own CDN must exist (fal downloads every input file); URLs on other hosts are not
fetched because tests run without network.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow_provider_kling.emulator.storage import Storage, StoredFile

log = logging.getLogger(__name__)

ERRORS_DOC = "https://docs.fal.ai/errors/#"
# Field names that carry an input image (first match feeds the generated frames).
IMAGE_FIELDS = ("image_url", "start_image_url", "input_image_urls", "image_urls", "reference_image_urls")


def _kling_generation_id(endpoint_id: str) -> bool:
    return "kling" in endpoint_id and ("text-to-video" in endpoint_id or "image-to-video" in endpoint_id)


def schema_errors(endpoint_id: str, arguments: Any) -> list[dict[str, Any]]:
    """fal's pydantic-style 422 ``detail`` list for the input ([] = valid or unknown endpoint)."""
    if not isinstance(arguments, dict):
        return [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]
    try:
        from airflow_provider_kling.models import fal_validation_errors
    except (ImportError, AttributeError):
        pass  # the models package isn't importable: use the minimal stand-in below
    else:
        return list(fal_validation_errors(endpoint_id, arguments) or [])
    if _kling_generation_id(endpoint_id) and not arguments.get("prompt"):
        return [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}]
    return []


def _url_fields(value: Any, loc: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every (location, string) under a ``*_url`` / ``*_urls`` key, recursively."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and (key.endswith("_url") or key.endswith("_urls")):
                yield (*loc, key), item
            elif isinstance(item, list) and key.endswith("_urls"):
                for index, entry in enumerate(item):
                    if isinstance(entry, str):
                        yield (*loc, key, index), entry
                    else:
                        yield from _url_fields(entry, (*loc, key, index))
            else:
                yield from _url_fields(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _url_fields(item, (*loc, index))


def is_own_url(url: str, own_netlocs: set[str]) -> bool:
    """Does this URL point at the emulator itself (the only host it may "download" from)?"""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and parts.netloc in own_netlocs


def local_file(url: str, storage: Storage, own_netlocs: set[str]) -> StoredFile | None:
    """The stored file an emulator URL points at; None when missing or not an emulator URL."""
    if not is_own_url(url, own_netlocs):
        return None
    path = unquote(urlsplit(url).path)
    if not path.startswith("/cdn/files/"):
        return None
    return storage.get(path[len("/cdn/files/") :])


def file_errors(arguments: Any, storage: Storage, own_netlocs: set[str]) -> list[dict[str, Any]]:
    """422 entries for input files the emulator serves itself but can't find, or can't read as images."""
    errors: list[dict[str, Any]] = []
    for loc, url in _url_fields(arguments, ("body",)):
        if not is_own_url(url, own_netlocs):
            continue  # another host: never fetched (no network), assumed reachable
        found = local_file(url, storage, own_netlocs)
        if found is None:
            errors.append(
                {
                    "loc": list(loc),
                    "msg": "Failed to download the file. Please check if the URL is accessible.",
                    "type": "file_download_error",
                    "url": ERRORS_DOC + "file_download_error",
                    "input": url,
                }
            )
        elif "image" in str(loc[1]) and not _is_image(found):
            errors.append(
                {
                    "loc": list(loc),
                    "msg": "Failed to load the image. Please ensure the image file is not corrupted.",
                    "type": "image_load_error",
                    "url": ERRORS_DOC + "image_load_error",
                    "input": url,
                }
            )
    return errors


def _is_image(stored: StoredFile) -> bool:
    from PIL import Image

    try:
        with Image.open(stored.path) as image:
            image.verify()
        return True
    except Exception:
        return False


def input_image(arguments: Any, storage: Storage, own_netlocs: set[str]):  # -> PIL.Image.Image | None
    """The first input image the emulator can read (its own CDN or a data URI), for frame generation."""
    if not isinstance(arguments, dict):
        return None
    from PIL import Image

    for name in IMAGE_FIELDS:
        value = arguments.get(name)
        url = value[0] if isinstance(value, list) and value else value
        if not isinstance(url, str):
            continue
        try:
            if url.startswith("data:"):
                payload = url.split(",", 1)[1]
                image = Image.open(io.BytesIO(base64.b64decode(payload)))
            else:
                found = local_file(url, storage, own_netlocs)
                if found is None:
                    continue  # another host is never fetched: frames are generated instead
                image = Image.open(found.path)
            image.load()
            return image
        except Exception as exc:  # a broken image is reported by file_errors; frames fall back
            log.debug("emulator: cannot read input image %s: %s", name, exc)
    return None
