"""Output models: every Kling endpoint on fal answers ``{"video": File}``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class File(BaseModel):
    """A file fal hosts on its CDN (fal's ``File`` type).

    :param url: public URL of the file (fal CDN, kept at least 7 days).
    :param content_type: MIME type, e.g. ``video/mp4``.
    :param file_name: file name fal gave it, e.g. ``output.mp4``.
    :param file_size: size in bytes.
    :param file_data: inline file content, rarely used by fal.
    """

    # Output models must not break when fal adds a field, so extras are kept, not rejected.
    model_config = ConfigDict(extra="allow")

    url: str
    content_type: str | None = None
    file_name: str | None = None
    file_size: int | None = None
    file_data: str | None = None


class VideoOutput(BaseModel):
    """Result of a Kling video endpoint.

    :param video: the generated MP4.
    """

    model_config = ConfigDict(extra="allow")

    video: File
