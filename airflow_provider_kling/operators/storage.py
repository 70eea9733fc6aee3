"""Persist a generated Kling video to object storage (local disk, S3, GCS, ... via Airflow's
``ObjectStoragePath``).

fal keeps generated media on its CDN for a limited time, so a pipeline that wants to keep a video
copies it somewhere it controls: that is this operator's one job.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_kling.exceptions import KlingDownloadError
from airflow_provider_kling.hooks._placement import (
    DEFAULT_CHUNK_SIZE,
    commit,
    destination_error,
    ensure_parent,
    remove_quietly,
    temporary_sibling,
)
from airflow_provider_kling.lifecycle.output import VideoSource, parse_source

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

__all__ = ["KlingDownloadError", "KlingVideoToObjectStorageOperator", "VideoSource", "parse_source"]

log = logging.getLogger(__name__)

# Keys of the Kling operators' return value that are worth keeping next to the video.
_SIDECAR_SOURCE_KEYS = ("request_id", "endpoint_id", "cost_estimate", "duration", "prompt", "file_name")


def _upstream_task_id(source: Any) -> str | None:
    """The task id behind an XCom reference such as ``generate.output["video_url"]``, if any."""
    operator = getattr(source, "operator", None)
    key = getattr(source, "key", None)
    task_id = getattr(operator, "task_id", None)
    if isinstance(key, str) and isinstance(task_id, str) and type(source).__name__ == "PlainXComArg":
        return task_id
    return None


class KlingVideoToObjectStorageOperator(BaseOperator):
    """Copy a generated video from its URL to object storage, atomically, with its sha256.

    The file is streamed in chunks (memory stays flat for multi-GB files), written under a hidden
    temporary name and moved into place only once its size matched ``Content-Length`` and the
    source's ``file_size``; a failure leaves no partial file. The media URL is fetched without
    credentials: the fal key is never sent to it.

    Returns (XCom ``return_value``) ``{"path", "size", "sha256", "content_type", "request_id",
    "source_url", "sidecar_path"}``. Each ``Asset`` in ``outlets`` gets an event whose ``extra``
    holds the same facts; each ``AssetAlias`` gets an event for the asset ``<path>``.

    :param source: the video: a URL, or the Kling operator's result (``generate.output``,
        ``"{{ ti.xcom_pull('generate') }}"``, or a mapped ``.expand(source=generate.output)``).
        fal's raw ``{"video": {"url": ...}}`` output is accepted too. Templated.
    :param destination: where to write: an ``ObjectStoragePath`` or a string such as
        ``file:///data/videos/``, ``s3://bucket/kling/{{ ds }}/``, ``/abs/path/clip.mp4``. A
        destination ending in ``/``, an existing folder, or a name without a suffix is a folder:
        the file is then named ``<request_id>.mp4``. A plain URL source gets its request id from
        the Kling task it comes from (``source=generate.output["video_url"]``); when there is none,
        the file is named after its content (first 16 hex digits of its sha256), so two different
        videos never share a name. Templated.
    :param destination_conn_id: Airflow connection for the store (e.g. ``aws_default``), when not
        given inside the path (``s3://conn_id@bucket/...``). Templated.
    :param sidecar: ``True`` writes ``<name>.json`` next to the video with the request id,
        endpoint, cost estimate, size, sha256 and Airflow run ids; a dict is written too, merged in
        (e.g. ``{"prompt": "..."}``). Templated.
    :param overwrite: replace an existing file (default, logged) or fail: before downloading when the
        file exists, and at the final move when another task saved the same name meanwhile (only
        one of racing writers succeeds).
    :param chunk_size: bytes per read/write.
    :param timeout: seconds allowed to connect and between two reads.
    :param download_attempts: tries in all for transient failures (cut connections, 5xx, 429).
    :param download_backoff: first wait between tries, in seconds (doubles each time).
    """

    template_fields: Sequence[str] = ("source", "destination", "destination_conn_id", "sidecar")
    template_fields_renderers = {"source": "json", "sidecar": "json"}
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        source: Any,
        destination: str | ObjectStoragePath,
        destination_conn_id: str | None = None,
        sidecar: bool | dict[str, Any] = False,
        overwrite: bool = True,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        timeout: float = 120.0,
        download_attempts: int = 3,
        download_backoff: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if chunk_size < 1024:
            raise ValueError(f"chunk_size must be at least 1024 bytes, got {chunk_size}")
        if download_attempts < 1:
            raise ValueError(f"download_attempts must be at least 1, got {download_attempts}")
        self.source = source
        # ``generate.output["video_url"]`` renders to a bare URL; remember which task it comes from
        # so its request id can name the file.
        self._source_task_id = _upstream_task_id(source)
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.sidecar = sidecar
        self.overwrite = overwrite
        self.chunk_size = chunk_size
        self.timeout = timeout
        self.download_attempts = download_attempts
        self.download_backoff = download_backoff

    def execute(self, context: Context) -> dict[str, Any]:
        video = parse_source(self.source)
        if video.request_id is None:
            request_id = self._upstream_request_id(context)
            if request_id:
                video.info["request_id"] = request_id
        target, content_named = self._target(video)
        if not content_named and not self.overwrite and target.exists():
            raise FileExistsError(f"destination: {target} exists and overwrite=False")
        if content_named:
            self.log.info(
                "Copying %s into %s (no request id: named after its sha256)", video.url, target.parent
            )
        else:
            self.log.info("Copying %s to %s", video.url, target)
        # Imported here: the downloader (HTTP client, retry policy, MP4 walker, writer thread) is not
        # needed to parse a DAG file, and Airflow parses every file again and again.
        from airflow_provider_kling.hooks.download import stream_to_storage

        result = stream_to_storage(
            video.url,
            target,
            expected_size=video.file_size,
            chunk_size=self.chunk_size,
            timeout=self.timeout,
            attempts=self.download_attempts,
            backoff=self.download_backoff,
            overwrite=self.overwrite,
            content_named=content_named,
        )
        target = result.path
        rate = result.size / result.seconds / 1e6 if result.seconds > 0 else float("inf")
        self.log.info(
            "Saved %d bytes to %s in %.2f s (%.1f MB/s), sha256 %s",
            result.size,
            target,
            result.seconds,
            rate,
            result.sha256,
        )
        output: dict[str, Any] = {
            "path": str(target),
            "size": result.size,
            "sha256": result.sha256,
            "content_type": result.content_type or video.content_type,
            "request_id": video.request_id,
            "source_url": video.url,
            "sidecar_path": None,
        }
        if self.sidecar:
            output["sidecar_path"] = str(self._write_sidecar(target, video, output, context))
        self._emit_asset_events(context, output)
        return output

    def resolve_destination(self, video: VideoSource) -> ObjectStoragePath:
        """The final file path: ``destination`` itself, or ``destination/<request_id>.mp4`` for a
        folder (``destination/<sha256>.mp4`` once downloaded, when the request id is unknown)."""
        target, content_named = self._target(video)
        return target.parent / f"<sha256>{video.suffix}" if content_named else target

    def _target(self, video: VideoSource) -> tuple[ObjectStoragePath, bool]:
        """The final path and whether its stem is still to be replaced by the content hash."""
        from airflow.sdk import ObjectStoragePath

        raw = self.destination
        as_text = str(raw)
        if not as_text.strip():
            raise ValueError("destination: must not be empty")
        path = ObjectStoragePath(raw, conn_id=self.destination_conn_id) if isinstance(raw, str) else raw
        if self.destination_conn_id and isinstance(raw, ObjectStoragePath) and not raw.conn_id:
            path = ObjectStoragePath(str(raw), conn_id=self.destination_conn_id)
        if as_text.endswith("/") or not posixpath.splitext(path.name)[1] or path.is_dir():
            name = video.file_name()
            if name is None:
                return path / f"video{video.suffix}", True
            return path / name, False
        return path, False

    def _upstream_request_id(self, context: Context) -> str | None:
        """The request id the Kling task behind a bare-URL XCom source pushed (XCom ``request_id``)."""
        ti = context.get("ti")
        if self._source_task_id is None or ti is None:
            return None
        try:
            value = ti.xcom_pull(task_ids=self._source_task_id, key="request_id")
        except Exception:  # a lookup that fails only costs the nicer name
            self.log.debug("Could not look up the request id of %s", self._source_task_id, exc_info=True)
            return None
        return value if isinstance(value, str) and value else None

    def _write_sidecar(
        self, target: ObjectStoragePath, video: VideoSource, output: dict[str, Any], context: Context
    ) -> ObjectStoragePath:
        ti = context.get("ti")
        document: dict[str, Any] = {k: video.info[k] for k in _SIDECAR_SOURCE_KEYS if k in video.info}
        document.update({k: output[k] for k in ("path", "size", "sha256", "content_type", "source_url")})
        document["saved_at"] = datetime.now(timezone.utc).isoformat()
        if ti is not None:
            document["airflow"] = {
                "dag_id": ti.dag_id,
                "run_id": ti.run_id,
                "task_id": ti.task_id,
                "map_index": getattr(ti, "map_index", -1),
            }
        if isinstance(self.sidecar, Mapping):
            document.update(self.sidecar)
        sidecar = target.parent / f"{posixpath.splitext(target.name)[0]}.json"
        tmp = temporary_sibling(sidecar)
        ensure_parent(sidecar)
        try:
            try:
                fh = tmp.fs.open(tmp.path, "w")
            except OSError as exc:
                raise destination_error(sidecar, exc) from None
            with fh:
                json.dump(document, fh, indent=2, sort_keys=True, default=str)
            commit(tmp, sidecar)
        except BaseException:
            remove_quietly(tmp)
            raise
        self.log.info("Wrote sidecar %s", sidecar)
        return sidecar

    def get_openlineage_facets_on_start(self) -> Any:
        """The source video URL (and the Kling request facet when the source is a Kling result)."""
        from airflow_provider_kling.lineage import storage_operator_lineage

        return storage_operator_lineage(self, complete=False)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The source video URL in, the persisted file out; see :mod:`airflow_provider_kling.lineage`."""
        from airflow_provider_kling.lineage import storage_operator_lineage

        return storage_operator_lineage(self, complete=True)

    def _emit_asset_events(self, context: Context, output: dict[str, Any]) -> None:
        if not self.outlets:
            return
        from airflow.sdk import Asset, AssetAlias

        extra = {k: output[k] for k in ("path", "size", "sha256", "content_type", "request_id", "source_url")}
        events = context["outlet_events"]
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                events[outlet].extra.update(extra)
            elif isinstance(outlet, AssetAlias):
                events[outlet].add(Asset(output["path"]), extra=extra)
