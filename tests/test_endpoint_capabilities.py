"""The typed operators' capability table (read at DAG parse time, no pydantic) matches the registry."""

from __future__ import annotations

import subprocess
import sys

from airflow_provider_kling.models import capability_table
from airflow_provider_kling.models.capability_table import CAPABILITIES, Caps
from airflow_provider_kling.models.registry import REGISTRY


def derived() -> dict[str, Caps]:
    """What the registry's pydantic models say, in the table's shape."""
    return {
        endpoint_id: Caps(*(getattr(spec.capabilities, name) for name in Caps._fields))
        for endpoint_id, spec in REGISTRY.items()
    }


def render(table: dict[str, Caps]) -> str:
    """The table's rows as they appear in models/capability_table.py (to paste after a registry change)."""
    rows = [
        f"    {eid.removeprefix(capability_table.PREFIX)!r}: Caps{tuple(caps)!r},"
        for eid, caps in table.items()
    ]
    return "\n".join(rows)


def test_capability_table_matches_the_registry():
    assert {k: tuple(v) for k, v in CAPABILITIES.items()} == {k: tuple(v) for k, v in derived().items()}, (
        "models/capability_table.py is out of date; its rows should be:\n" + render(derived())
    )


def test_typed_operators_build_no_pydantic_model_at_parse_time():
    # A DAG file with a typed operator: the model registry (pydantic) must stay unimported; only the
    # keyword mapping and its plain-data table (and the lazy package they live in) are loaded.
    code = (
        "import sys\n"
        "from airflow_provider_kling.operators.kling import KlingTextToVideoOperator\n"
        "KlingTextToVideoOperator(task_id='t', prompt='a fox', model='v1.6', tier='pro', aspect_ratio='1:1')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('airflow_provider_kling.models'))\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == repr(
        [
            "airflow_provider_kling.models",
            "airflow_provider_kling.models.capability_table",
            "airflow_provider_kling.models.keywords",
        ]
    )
