"""Apache Airflow provider for Kling video generation on fal.ai's queue API."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
