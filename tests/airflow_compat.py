"""Test-side names that moved between Airflow 3.1 and 3.3.

Product code gates on ``airflow_provider_kling.version_compat``; these are only needed by tests
(the product never imports them), so they stay out of the package.
"""

from __future__ import annotations

try:  # Airflow >= 3.2: the task SDK owns the exception
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef]

try:  # Airflow >= 3.2
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 3.1
    from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

try:  # Airflow >= 3.2
    from airflow.serialization.serialized_objects import DagSerialization
except ImportError:  # Airflow 3.1: same serialize_dag / deserialize_dag classmethods
    from airflow.serialization.serialized_objects import SerializedDAG as DagSerialization  # type: ignore[no-redef]

__all__ = ["DagBag", "DagSerialization", "TaskDeferred"]
