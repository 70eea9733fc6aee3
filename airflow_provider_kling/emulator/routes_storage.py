"""Storage handlers: CDN token, fal_v3 single and multipart uploads, GCS-style initiate +
presigned PUT, and serving stored files back."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from airflow_provider_kling.emulator.storage import receive_body

if TYPE_CHECKING:
    from airflow_provider_kling.emulator.app import EmulatorApp

DEFAULT_TYPE = "application/octet-stream"


def _content_type(request: Request, default: str = DEFAULT_TYPE) -> str:
    return request.headers.get("content-type", default).split(";")[0].strip() or default


def _token_error(ctx: EmulatorApp, request: Request) -> Response | None:
    """CDN routes take the short-lived bearer token from /storage/auth/token, not the API key."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not ctx.storage.token_valid(token.strip()):
        return JSONResponse({"detail": "Invalid or expired CDN token"}, status_code=401)
    return None


async def cdn_token(ctx: EmulatorApp, request: Request) -> Response:
    denied = ctx.auth_error(request)
    if denied is not None:
        return denied
    token, expires = ctx.storage.issue_token()
    return JSONResponse(
        {
            "token": token,
            "token_type": "Bearer",
            "base_url": f"{ctx.base_url(request)}/cdn",
            # isoformat() of an aware UTC datetime gives "+00:00" (fromisoformat rejects "Z" before 3.11).
            "expires_at": expires.isoformat(),
        }
    )


async def cdn_upload(ctx: EmulatorApp, request: Request) -> Response:
    denied = _token_error(ctx, request)
    if denied is not None:
        return denied
    key, path = ctx.storage.new_key(request.headers.get("x-fal-file-name"))
    await receive_body(request.stream(), path)
    ctx.storage.register(key, _content_type(request))
    return JSONResponse({"access_url": f"{ctx.base_url(request)}/cdn/files/{key}"})


async def multipart_initiate(ctx: EmulatorApp, request: Request) -> Response:
    denied = _token_error(ctx, request)
    if denied is not None:
        return denied
    key, upload_id = ctx.storage.start_multipart(
        request.headers.get("x-fal-file-name") or "upload.bin", _content_type(request)
    )
    return JSONResponse({"access_url": f"{ctx.base_url(request)}/cdn/files/{key}", "uploadId": upload_id})


async def multipart_part(ctx: EmulatorApp, request: Request, key: str, upload_id: str, part: str) -> Response:
    denied = _token_error(ctx, request)
    if denied is not None:
        return denied
    upload = ctx.storage.multipart(upload_id, key)
    if upload is None:
        return JSONResponse({"detail": "Unknown multipart upload"}, status_code=404)
    if not part.isdigit() or not 1 <= int(part) <= 10_000:
        return JSONResponse({"detail": "partNumber must be an integer between 1 and 10000"}, status_code=400)
    number = int(part)
    path = ctx.storage.part_path(upload_id, number)
    _, md5 = await receive_body(request.stream(), path)
    upload.parts[number] = (path, md5)
    return Response(status_code=200, headers={"ETag": f'"{md5}"'})


async def multipart_complete(ctx: EmulatorApp, request: Request, key: str, upload_id: str) -> Response:
    denied = _token_error(ctx, request)
    if denied is not None:
        return denied
    if ctx.storage.multipart(upload_id, key) is None:
        return JSONResponse({"detail": "Unknown multipart upload"}, status_code=404)
    try:
        body = await request.json()
        parts = [(int(p["partNumber"]), str(p["etag"])) for p in body["parts"]]
    except (ValueError, KeyError, TypeError):
        return JSONResponse(
            {"detail": 'Body must be {"parts": [{"partNumber": n, "etag": "..."}]}'}, status_code=400
        )
    try:
        # Joining parts of a big file is disk work: keep it off the event loop.
        await asyncio.get_running_loop().run_in_executor(
            ctx.executor, ctx.storage.finish_multipart, upload_id, parts
        )
    except ValueError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    return JSONResponse({"access_url": f"{ctx.base_url(request)}/cdn/files/{key}"})


async def storage_initiate(ctx: EmulatorApp, request: Request) -> Response:
    denied = ctx.auth_error(request)
    if denied is not None:
        return denied
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return JSONResponse({"detail": "Body must be a JSON object with file_name and content_type"}, 422)
    content_type = str(body.get("content_type") or DEFAULT_TYPE)
    token, key = ctx.storage.presign(body.get("file_name"), content_type)
    base = ctx.base_url(request)
    return JSONResponse(
        {"upload_url": f"{base}/cdn/presigned/{token}", "file_url": f"{base}/cdn/files/{key}"}
    )


async def presigned_put(ctx: EmulatorApp, request: Request, token: str) -> Response:
    # A presigned URL is its own credential: no Authorization header is needed (or looked at).
    target = ctx.storage.take_presigned(token)
    if target is None:
        return Response(
            "<Error><Code>AccessDenied</Code></Error>", status_code=403, media_type="application/xml"
        )
    key, content_type = target
    await receive_body(request.stream(), ctx.storage.root / key)
    ctx.storage.register(key, _content_type(request, content_type))
    return Response(status_code=200)


async def file_get(ctx: EmulatorApp, request: Request, key: str) -> Response:
    stored = ctx.storage.get(key)
    if stored is None:
        return JSONResponse({"detail": "File not found"}, status_code=404)
    # FileResponse streams from disk in chunks and answers Range requests.
    return FileResponse(stored.path, media_type=stored.content_type)
