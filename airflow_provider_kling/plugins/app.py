"""The FastAPI app behind the plugin. Each feature contributes one ``APIRouter`` included here."""

from __future__ import annotations

from fastapi import FastAPI

from airflow_provider_kling.plugins import webhooks
from airflow_provider_kling.plugins.ui import routes as ui_routes


def create_app() -> FastAPI:
    app = FastAPI(title="Kling (fal.ai)", docs_url=None, redoc_url=None, openapi_url=None)
    # Feature routers are included below, one line each (UI pages, fal webhook receiver).
    app.include_router(ui_routes.router)
    app.include_router(webhooks.create_router())  # POST /kling/webhooks/fal, signature-authenticated
    return app
