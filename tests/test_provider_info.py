"""Provider metadata: a mistake here breaks every ``import airflow`` in the environment."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import distribution, entry_points
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest

from airflow_provider_kling import __version__
from airflow_provider_kling.get_provider_info import get_provider_info

DIST = "airflow-provider-kling"
INFO = get_provider_info()


def _modules() -> list[str]:
    return [
        m
        for section in ("hooks", "operators", "sensors", "triggers")
        for e in INFO[section]
        for m in e["python-modules"]
    ]


def _classes() -> list[str]:
    return [*INFO["extra-links"], *(c["hook-class-name"] for c in INFO["connection-types"])]


def _import_class(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_provider_info_matches_airflows_schema():
    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(INFO, schema)


def test_package_name_and_version_match_the_distribution():
    dist = distribution(DIST)
    assert INFO["package-name"] == dist.metadata["Name"] == DIST
    assert INFO["versions"][0] == __version__ == dist.version
    (entry,) = [e for e in entry_points(group="apache_airflow_provider") if e.dist and e.dist.name == DIST]
    assert entry.load() is get_provider_info


@pytest.mark.parametrize("module", _modules())
def test_every_advertised_module_imports(module):
    importlib.import_module(module)


@pytest.mark.parametrize("path", _classes())
def test_every_advertised_class_exists(path):
    assert isinstance(_import_class(path), type)


def test_hook_matches_its_connection_type():
    (conn,) = INFO["connection-types"]
    hook = _import_class(conn["hook-class-name"])
    assert hook.conn_type == conn["connection-type"] == "fal"
    assert hook.hook_name == conn["hook-name"]
    assert hook.default_conn_name == "fal_default" and hook.conn_name_attr == "fal_conn_id"
    # The UI declarations and the hook agree on the form.
    legacy = hook.get_ui_field_behaviour()
    assert legacy["hidden_fields"] == conn["ui-field-behaviour"]["hidden-fields"]
    assert legacy["relabeling"] == conn["ui-field-behaviour"]["relabeling"]


def test_airflow_cli_lists_the_provider(airflow_home: Path):
    env = {**os.environ, "AIRFLOW_HOME": str(airflow_home)}
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    start = done.stdout.index("[")
    providers = {p["package_name"]: p for p in json.loads(done.stdout[start:])}
    assert providers[DIST]["version"] == __version__
