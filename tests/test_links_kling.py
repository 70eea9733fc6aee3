"""Extra links: attached to every Kling task, named for the UI, resolved from XCom only.

That the links resolve to the right URLs inside a real task run is checked in
tests/test_operator_dags.py (the ``_link_*`` XComs Airflow stores at the end of each try).
"""

from __future__ import annotations

import inspect

import pytest

from airflow_provider_kling.get_provider_info import get_provider_info
from airflow_provider_kling.links.kling import FalRequestLink, KlingVideoLink
from airflow_provider_kling.operators import kling as operators
from airflow_provider_kling.sensors.kling import KlingRequestSensor

TASK_CLASSES = [
    operators.KlingVideoOperator,
    operators.KlingImageToVideoOperator,
    operators.KlingTextToVideoOperator,
    operators.KlingLipSyncOperator,
    operators.KlingVideoEffectsOperator,
    KlingRequestSensor,
]


@pytest.mark.parametrize("cls", TASK_CLASSES, ids=lambda c: c.__name__)
def test_every_kling_task_carries_both_links(cls):
    links = {type(link): link.name for link in cls.operator_extra_links}
    assert links == {KlingVideoLink: "Kling video", FalRequestLink: "fal request"}


def test_links_are_registered_in_provider_info():
    registered = set(get_provider_info()["extra-links"])
    assert {
        "airflow_provider_kling.links.kling.KlingVideoLink",
        "airflow_provider_kling.links.kling.FalRequestLink",
    } <= registered


def test_links_never_touch_the_connection():
    # A link is rendered by the API server for every page view: it must read XCom, not fal.
    for cls in (KlingVideoLink, FalRequestLink):
        source = inspect.getsource(cls)
        assert "XCom" in inspect.getsource(inspect.getmodule(cls)) and "Hook" not in source
    assert KlingVideoLink().xcom_key == "_link_KlingVideoLink"
    assert FalRequestLink().xcom_key == "_link_FalRequestLink"
