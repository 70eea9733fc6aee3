"""Provider metadata, read by Airflow through the ``apache_airflow_provider`` entry point.

A mistake here breaks every ``import airflow`` in the environment, so a test validates this
dict against the schema shipped inside the installed Airflow.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_kling import __version__
from airflow_provider_kling.webhooks.config import provider_config

INTEGRATION = "Kling (fal.ai)"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-kling",
        "name": "Kling (fal.ai)",
        "description": "Generate Kling videos through fal.ai's queue API from Airflow DAGs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://fal.ai/models?keywords=kling",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_provider_kling.hooks.kling"]}
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_provider_kling.operators.kling",
                    "airflow_provider_kling.operators.storage",
                ],
            }
        ],
        "sensors": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_provider_kling.sensors.kling"]}
        ],
        "triggers": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_provider_kling.triggers.kling"]}
        ],
        "config": provider_config(),
        "extra-links": [
            "airflow_provider_kling.links.kling.KlingVideoLink",
            "airflow_provider_kling.links.kling.FalRequestLink",
        ],
        "connection-types": [
            {
                "connection-type": "fal",
                "hook-class-name": "airflow_provider_kling.hooks.kling.KlingHook",
                "hook-name": "fal.ai (Kling)",
                "ui-field-behaviour": {
                    "hidden-fields": ["login", "schema", "port"],
                    "relabeling": {"password": "API Key", "host": "Queue URL"},
                    "placeholders": {
                        "host": "https://queue.fal.run",
                        "password": "<key_id>:<key_secret>",
                    },
                },
                "conn-fields": {
                    "rest_url": {
                        "label": "REST / storage base URL",
                        "description": "fal REST API used for uploads (storage tokens, initiate).",
                        "schema": {"type": ["string", "null"], "default": "https://rest.fal.ai"},
                    },
                    "cdn_url": {
                        "label": "CDN upload URL",
                        "description": "fal CDN that receives file uploads.",
                        "schema": {"type": ["string", "null"], "default": "https://v3.fal.media"},
                    },
                    "request_timeout": {
                        "label": "Request timeout (seconds)",
                        "description": "Read timeout of each HTTP call to fal.",
                        "schema": {"type": ["number", "null"], "default": 120},
                    },
                    "max_connections": {
                        "label": "Triggerer poll connections",
                        "description": "Connections (and status polls in flight) the triggerer's shared "
                        "fal client keeps for all Kling triggers; SSE streams have one each on top.",
                        "schema": {"type": ["integer", "null"], "default": 100, "minimum": 1},
                    },
                    "keepalive_expiry": {
                        "label": "Idle connection keep-alive (seconds)",
                        "description": "How long an idle pooled connection stays open for the next poll.",
                        "schema": {"type": ["number", "null"], "default": 60},
                    },
                    "dashboard_url_template": {
                        "label": "fal request link template",
                        "description": "URL of the 'fal request' extra link; {request_id} and "
                        "{endpoint_id} are substituted.",
                        "schema": {
                            "type": ["string", "null"],
                            "default": "https://fal.ai/dashboard/requests/{request_id}",
                        },
                    },
                },
            }
        ],
    }
