"""A faithful local fal.ai queue server (queue, storage and CDN routes) for tests, demos and the CLI.

It never imports Airflow, so it starts fast and can run next to any Airflow process.
"""

from __future__ import annotations

from airflow_provider_kling.emulator.server import FalEmulator

__all__ = ["FalEmulator"]
