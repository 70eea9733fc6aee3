"""Which Airflow is this? Checked once, so feature gates read as plain booleans.

Also the few names that moved between Airflow 3.1 and 3.3, imported lazily so that importing this
module never imports airflow itself.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from packaging.version import Version

AIRFLOW_VERSION = Version(Version(version("apache-airflow-core")).base_version)
AIRFLOW_V_3_2_PLUS = AIRFLOW_VERSION >= Version("3.2.0")
AIRFLOW_V_3_3_PLUS = AIRFLOW_VERSION >= Version("3.3.0")


def get_hook_lineage_collector() -> Any:
    """Airflow's hook lineage collector (``airflow.sdk.lineage`` from 3.2, core's module in 3.1)."""
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector as _get
    except ImportError:  # Airflow 3.1
        from airflow.lineage.hook import get_hook_lineage_collector as _get  # type: ignore[no-redef]
    return _get()
