"""Webhook mode of the Kling operators: configuration errors come before any network call."""

from __future__ import annotations

import pytest

from airflow_provider_kling.exceptions import KlingConfigurationError
from airflow_provider_kling.operators.kling import KlingTextToVideoOperator, KlingVideoOperator

ENDPOINT = "fal-ai/kling-video/v1.6/standard/text-to-video"


def test_webhook_asset_needs_wait_for_completion_false():
    with pytest.raises(KlingConfigurationError, match="wait_for_completion=False"):
        KlingVideoOperator(
            task_id="t", endpoint_id=ENDPOINT, arguments={"prompt": "x"}, webhook_asset="videos"
        )


def test_webhook_asset_accepts_an_asset_or_a_name_and_rejects_other_things():
    from airflow.sdk import Asset

    op = KlingTextToVideoOperator(task_id="t", prompt="x", wait_for_completion=False, webhook_asset="videos")
    assert (op.webhook_asset.name, op.webhook_asset.uri) == ("videos", "videos")
    asset = Asset(name="videos", uri="s3://bucket/videos")
    assert (
        KlingTextToVideoOperator(
            task_id="u", prompt="x", wait_for_completion=False, webhook_asset=asset
        ).webhook_asset
        == asset
    )
    with pytest.raises(KlingConfigurationError, match="webhook_asset must be"):
        KlingTextToVideoOperator(task_id="v", prompt="x", wait_for_completion=False, webhook_asset=42)


def test_no_reachable_webhook_url_fails_before_any_request(emulator, fal_conn, monkeypatch):
    monkeypatch.delenv("AIRFLOW__KLING__WEBHOOK_URL", raising=False)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "")
    op = KlingVideoOperator(
        task_id="t",
        endpoint_id=ENDPOINT,
        arguments={"prompt": "x"},
        wait_for_completion=False,
        webhook_asset="videos",
    )
    with pytest.raises(KlingConfigurationError, match=r"\[kling\] webhook_url"):
        op.execute({})
    assert sum(emulator.requests.values()) == 0


def test_webhook_url_defaults_to_the_api_servers_base_url(monkeypatch):
    from airflow_provider_kling.webhooks.config import webhook_url

    monkeypatch.delenv("AIRFLOW__KLING__WEBHOOK_URL", raising=False)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    assert webhook_url() == "https://airflow.example.com/kling/webhooks/fal"
    monkeypatch.setenv("AIRFLOW__KLING__WEBHOOK_URL", "https://hooks.example.com/kling/webhooks/fal")
    assert webhook_url() == "https://hooks.example.com/kling/webhooks/fal"
