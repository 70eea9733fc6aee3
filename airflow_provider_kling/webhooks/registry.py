"""What a webhook-mode submit leaves behind for the receiver: one Airflow Variable per fal request.

Tasks cannot write the metadata database directly on Airflow 3 (only through the Execution API), and
a Variable is the one record a task can write that the api-server can find again by key. The key
holds the request id, so the receiver looks it up with one indexed read; the value says which asset
the delivery goes to and which task instance submitted it. The receiver deletes the Variable once
the delivery is recorded. Pure data here: no Airflow imports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

KEY_PREFIX = "kling_webhook__"
FORMAT = 1


def variable_key(request_id: str) -> str:
    return f"{KEY_PREFIX}{request_id}"


@dataclass(frozen=True)
class Registration:
    """Routing for one fal request submitted with a webhook.

    :param request_id: fal's queue request id.
    :param endpoint_id: the Kling endpoint it was submitted to.
    :param asset_name: name of the asset the delivery records an event on.
    :param asset_uri: URI of that asset.
    :param dag_id: submitting task's DAG.
    :param run_id: submitting task's DAG run.
    :param task_id: submitting task.
    :param map_index: submitting task's map index (-1 when not mapped).
    :param try_number: the try that submitted.
    :param submitted_at: unix seconds of the submit.
    :param duration: seconds of video asked for, when known.
    :param cost_estimate: the operator's cost estimate (USD decimal string), when known.
    """

    request_id: str
    endpoint_id: str
    asset_name: str
    asset_uri: str
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    submitted_at: float
    duration: float | int | None = None
    cost_estimate: str | None = None

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Registration:
        """:raises ValueError: on anything that is not a registration this version wrote."""
        doc = json.loads(text)
        if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
            raise ValueError("not a kling webhook registration")
        fields: dict[str, Any] = {name: doc.get(name) for name in cls.__dataclass_fields__}
        for name in ("request_id", "endpoint_id", "asset_name", "asset_uri", "dag_id", "run_id", "task_id"):
            if not isinstance(fields[name], str) or not fields[name]:
                raise ValueError(f"registration field {name} is missing")
        fields["map_index"] = int(fields["map_index"])
        fields["try_number"] = int(fields["try_number"])
        fields["submitted_at"] = float(fields["submitted_at"])
        return cls(**fields)

    def description(self) -> str:
        return (
            f"airflow-provider-kling: routes fal's webhook for request {self.request_id} to asset "
            f"{self.asset_name!r}; submitted by {self.dag_id}/{self.run_id}/{self.task_id}"
            f"[{self.map_index}]. Deleted when the delivery is recorded."
        )

    def source(self) -> dict[str, Any]:
        """The submitting task, as kept in the asset event's ``extra``."""
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "map_index": self.map_index,
            "try_number": self.try_number,
        }
