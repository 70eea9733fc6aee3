"""Where the fal key comes from, and its shape checked before anything is sent.

fal's own clients read ``FAL_KEY``; with no ``fal_default`` connection at all the hook does too.
A key that is not ``<key_id>:<key_secret>`` fails locally, naming its source, never quoting it.
"""

from __future__ import annotations

import json
import logging

import pytest

from airflow_provider_kling.exceptions import KlingConfigurationError
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.protocol.config import DEFAULT_QUEUE_URL, key_shape_problem

T2V = "fal-ai/kling-video/v1.6/standard/text-to-video"
SECRET = "s3cr3t-part-of-the-key"


@pytest.fixture
def no_connection(monkeypatch, airflow_db):
    """No ``fal_default`` anywhere: not in the environment, not in the (fresh) metadata DB."""
    monkeypatch.delenv("AIRFLOW_CONN_FAL_DEFAULT", raising=False)
    for name in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)


def logged(caplog, capsys) -> str:
    """Hook log lines: Airflow's structlog writes them to stdout, stdlib logging to caplog."""
    captured = capsys.readouterr()
    return caplog.text + captured.out + captured.err


def test_without_a_default_connection_the_key_comes_from_fal_key(no_connection, monkeypatch, caplog, capsys):
    monkeypatch.setenv("FAL_KEY", f"key-id:{SECRET}")
    caplog.set_level(logging.INFO)
    settings = KlingHook().settings
    assert (settings.key, settings.key_source, settings.queue_url) == (
        f"key-id:{SECRET}",
        "FAL_KEY",
        DEFAULT_QUEUE_URL,
    )
    text = logged(caplog, capsys)
    assert "'fal_default' is not defined: using the fal key from FAL_KEY" in text
    assert SECRET not in text


def test_fal_key_id_and_secret_work_too_and_on_the_async_path(no_connection, monkeypatch, caplog, capsys):
    import asyncio

    monkeypatch.setenv("FAL_KEY_ID", "key-id")
    monkeypatch.setenv("FAL_KEY_SECRET", SECRET)
    caplog.set_level(logging.INFO)
    settings = asyncio.run(KlingHook()._asettings())
    assert (settings.key, settings.key_source) == (f"key-id:{SECRET}", "FAL_KEY_ID+FAL_KEY_SECRET")
    text = logged(caplog, capsys)
    assert "using the fal key from FAL_KEY_ID+FAL_KEY_SECRET" in text
    assert SECRET not in text


def test_no_connection_and_no_key_says_both_ways_to_fix_it(no_connection):
    with pytest.raises(KlingConfigurationError) as exc:
        KlingHook().settings  # noqa: B018
    message = str(exc.value)
    assert "'fal_default' is not defined" in message and "FAL_KEY" in message and "API Key" in message


def test_a_missing_custom_connection_never_falls_back_to_the_environment(no_connection, monkeypatch):
    # A misspelt conn id must fail, not quietly bill whoever's key is in the environment.
    monkeypatch.setenv("FAL_KEY", f"key-id:{SECRET}")
    with pytest.raises(Exception, match="fal_prod") as exc:
        KlingHook("fal_prod").settings  # noqa: B018
    assert type(exc.value).__name__ == "AirflowNotFoundException"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (SECRET, "has no ':'"),
        (f":{SECRET}", "key id) is empty"),
        ("key-id:", "key secret) is empty"),
        (f'"key-id:{SECRET}"', "quotes"),
        (f"Key key-id:{SECRET}", "authorization scheme"),
        (f"key-id:{SECRET}\nkey-id", "whitespace"),
        (f"key-id:{SECRET}:more", "more than one ':'"),
    ],
)
def test_malformed_keys_are_named_before_any_request(monkeypatch, emulator, key, problem):
    conn = json.loads(emulator.connection_json(key="unused:unused"))
    conn["password"] = key
    monkeypatch.setenv("AIRFLOW_CONN_FAL_DEFAULT", json.dumps(conn))
    with KlingHook() as hook, pytest.raises(KlingConfigurationError) as exc:
        hook.submit(T2V, {"prompt": "x"})
    message = str(exc.value)
    assert "connection's API Key (password) is malformed" in message and problem in message
    assert SECRET not in message
    assert sum(emulator.requests.values()) == 0


def test_a_malformed_fal_key_names_the_variable(no_connection, monkeypatch):
    monkeypatch.setenv("FAL_KEY", SECRET)
    with pytest.raises(KlingConfigurationError, match="FAL_KEY environment variable is malformed"):
        KlingHook().settings  # noqa: B018


def test_well_formed_keys_pass():
    assert key_shape_problem("2f4e8a1c-aaaa-bbbb-cccc-0123456789ab:0123456789abcdef0123456789abcdef") is None
