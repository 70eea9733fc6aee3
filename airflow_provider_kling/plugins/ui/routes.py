"""The UI router: the task-instance "Video" tab, the "Kling videos" gallery, and persisted files.

Pages are rendered on the server with Jinja2 (autoescaping on: prompts and fal's error texts are
user data). Every route depends on :func:`~.security.current_user`; task routes also check DAG
access through Airflow's own ``requires_access_dag``.
"""

from __future__ import annotations

import os
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from airflow_provider_kling.plugins.ui import chart, queries
from airflow_provider_kling.plugins.ui.live import LiveStatus, live_status
from airflow_provider_kling.plugins.ui.records import KLING_OPERATORS, TaskKey, VideoRecord
from airflow_provider_kling.plugins.ui.security import current_user, readable_dag_ids, require_task_access

#: Mounted by the plugin's app under /kling: /kling/ui/video, /kling/ui/gallery, /kling/ui/file.
PREFIX = "/ui"
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".webm"})

router = APIRouter(prefix=PREFIX, include_in_schema=False)

_env = Environment(
    loader=PackageLoader("airflow_provider_kling.plugins.ui", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["money"] = lambda v: "" if v is None else chart.money(Decimal(v))


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 90:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds:02d} s"


_env.filters["seconds"] = _seconds


def _safe_url(url: str | None) -> str:
    """Only http(s) URLs and this server's own paths reach an href/src (no ``javascript:``)."""
    if not url:
        return ""
    if url.startswith("/") and not url.startswith("//"):
        return url
    return url if urlsplit(url).scheme.lower() in ("http", "https") else ""


_env.filters["safe_url"] = _safe_url
_env.filters["when"] = lambda v: "" if v is None else v.strftime("%Y-%m-%d %H:%M:%S UTC")

# Pages are framed by Airflow's UI (same origin) and load media from anywhere fal serves it.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: https: http:; "
        "media-src 'self' https: http:; script-src 'self' 'sha256-{script}'; "
        "form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    from airflow_provider_kling.plugins.ui import assets

    html = _env.get_template(name).render(nav_script=assets.NAV_SCRIPT, **context)
    headers = {k: v.replace("{script}", assets.NAV_SCRIPT_SHA256) for k, v in _HEADERS.items()}
    return HTMLResponse(html, status_code=status_code, headers=headers)


def _session() -> Any:
    from airflow.utils.session import create_session

    return create_session()


def _map_index(raw: str | None) -> int:
    """Airflow's UI leaves ``{MAP_INDEX}`` unreplaced on tasks that are not mapped."""
    try:
        return int(raw) if raw not in (None, "") else -1
    except ValueError:
        return -1


def _task_url(key: TaskKey) -> str:
    from urllib.parse import quote

    base = f"/dags/{quote(key.dag_id, safe='')}/runs/{quote(key.run_id, safe='')}/tasks/{quote(key.task_id, safe='')}"
    return base if key.map_index < 0 else f"{base}/mapped/{key.map_index}"


def _key_query(key: TaskKey) -> str:
    return urlencode(
        {"dag_id": key.dag_id, "run_id": key.run_id, "task_id": key.task_id, "map_index": key.map_index}
    )


def _local_path(path: str) -> Path | None:
    """The local file behind a persisted path (``/abs/x.mp4`` or ``file:///abs/x.mp4``), else None."""
    parts = urlsplit(path)
    if parts.scheme in ("", "file", "local"):
        local = Path(parts.path if parts.scheme else path)
        return local if local.is_absolute() else None
    return None


def _playable_file(record: VideoRecord) -> Path | None:
    """The persisted copy, if it is a local video file whose size matches what the task recorded."""
    persisted = record.persisted
    if persisted is None:
        return None
    local = _local_path(persisted.path)
    if local is None or local.suffix.lower() not in VIDEO_SUFFIXES:
        return None
    try:
        stat = local.stat()
    except OSError:
        return None
    if not local.is_file() or (persisted.size is not None and stat.st_size != persisted.size):
        return None
    return local


def _media(record: VideoRecord) -> dict[str, Any]:
    """Where the player loads from: the persisted copy when it is served here, else fal's URL."""
    served = _playable_file(record) is not None and record.persisted is not None
    file_url = (
        f"/kling{PREFIX}/file?{_key_query(record.persisted.key)}" if served and record.persisted else None
    )
    src = file_url or record.video_url
    from airflow_provider_kling.plugins.ui import poster

    return {
        "src": src,
        # fal gives no thumbnail: the first frame of the local copy, when PyAV can decode it here.
        "poster": f"/kling{PREFIX}/poster?{_key_query(record.persisted.key)}"
        if file_url and record.persisted and poster.available()
        else None,
        "file_url": file_url,
        "task_url": _task_url(record.key),
        "persisted_task_url": _task_url(record.persisted.key) if record.persisted else None,
    }


def task_key(
    request: Request,
    dag_id: str = Query(...),
    run_id: str = Query(...),
    task_id: str = Query(...),
    map_index: str | None = Query(None),
    user: Any = Depends(current_user),
) -> TaskKey:
    """The task instance a task route is about, once the user may read it (401/403 otherwise)."""
    require_task_access(request, user)
    return TaskKey(dag_id, run_id, task_id, _map_index(map_index))


def _persisted(key: TaskKey) -> tuple[VideoRecord | None, Path | None]:
    """The task's record and the local file its storage task saved, if it can be played."""
    with _session() as session:
        record = queries.load_video(session, key)
    return record, _playable_file(record) if record is not None and record.is_storage else None


@router.get("/video", response_class=HTMLResponse)
def video_tab(request: Request, key: TaskKey = Depends(task_key)) -> HTMLResponse:
    """The task instance's Video tab (``external_views`` destination ``task_instance``)."""
    with _session() as session:
        record = queries.load_video(session, key)
        indexes = (
            queries.mapped_indexes(session, key.dag_id, key.run_id, key.task_id) if record is None else []
        )
    if record is None:
        return _render(
            "video.html",
            status_code=404 if not indexes else 200,
            record=None,
            key=key,
            indexes=indexes,
            key_query=_key_query,
        )
    live: LiveStatus | None = None
    if record.request_id and not record.is_storage and (record.is_running or record.video_url):
        # Waiting: where the request stands. Done: fal's generation time (the queue time is the rest).
        live = live_status(record.fal_conn_id, record.endpoint_id, record.request_id)
    is_kling = record.operator in KLING_OPERATORS or record.request_id is not None
    return _render(
        "video.html",
        record=record,
        key=key,
        live=live,
        is_kling=is_kling,
        media=_media(record),
        indexes=[],
        key_query=_key_query,
    )


def _date(raw: str | None, name: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be a date like 2026-01-31") from None


@router.get("/gallery", response_class=HTMLResponse)
def gallery_page(
    dag_id: str | None = Query(None),
    since: str | None = Query(None),
    until: str | None = Query(None),
    status: str | None = Query(None),
    page: int = Query(1, ge=1, le=100_000),
    user: Any = Depends(current_user),
) -> HTMLResponse:
    """The "Kling videos" page: recent videos of readable DAGs, filters, pages, and spend."""
    if status not in (None, "", *queries.STATUSES):
        raise HTTPException(400, f"status must be one of {', '.join(queries.STATUSES)}")
    filters = queries.Filters(
        dag_id=dag_id or None,
        since=_date(since, "since"),
        until=_date(until, "until"),
        status=status or None,
        page=page,
    )
    dag_ids = readable_dag_ids(user)
    with _session() as session:
        result = queries.gallery(session, dag_ids, filters)
    palette = chart.colours(sorted(result.spend_by_dag))
    base = {
        k: v
        for k, v in {
            "dag_id": filters.dag_id,
            "since": since,
            "until": until,
            "status": filters.status,
        }.items()
        if v
    }

    def page_url(number: int) -> str:
        return f"/kling{PREFIX}/gallery?{urlencode({**base, 'page': number})}"

    return _render(
        "gallery.html",
        result=result,
        filters=filters,
        since=since or "",
        until=until or "",
        statuses=queries.STATUSES,
        cards=[(record, _media(record)) for record in result.records],
        spend_svg=chart.spend_svg(result.spend_days, palette),
        palette=palette,
        page_url=page_url,
        key_query=_key_query,
    )


@router.get("/file")
def persisted_file(key: TaskKey = Depends(task_key)) -> FileResponse:
    """The video a storage task saved to local disk (range requests work, so the player can seek).

    Only a file the task's return value names, with a video suffix and the recorded size, is
    served: an XCom alone cannot make this route read an arbitrary file.
    """
    record, local = _persisted(key)
    if local is None:
        raise HTTPException(404, "No persisted video for this task instance")
    media_type = (record.content_type if record else None) or "video/mp4"
    return FileResponse(
        os.fspath(local), media_type=media_type, headers={"Cache-Control": "private, max-age=300"}
    )


@router.get("/poster")
def poster_image(key: TaskKey = Depends(task_key)) -> Response:
    """The first frame of a persisted video, as JPEG (the player's poster)."""
    from airflow_provider_kling.plugins.ui import poster

    _, local = _persisted(key)
    image = poster.first_frame_jpeg(local) if local is not None else None
    if image is None:
        raise HTTPException(404, "No poster for this task instance")
    return Response(image, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})
