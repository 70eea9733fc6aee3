"""Never pay twice across Airflow retries: a submit whose answer was lost is not sent again.

fal accepts the job, then the connection drops before the answer arrives (the emulator's
``reset_after_accept``): a paid job exists, and the task never learnt its id. The task runs in real
Airflow (``dag.test()``, retries=1).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.dagtest


def _dag(dag_id: str):
    from tests.airflow_compat import DagBag

    bag = DagBag(dag_folder=str(Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "kling_uncertain.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def _tries(dr) -> dict[str, tuple[str, int]]:
    return {ti.task_id: (ti.state, ti.try_number) for ti in dr.get_task_instances()}


def test_lost_submit_answer_is_not_resubmitted_by_the_retry(airflow_db, emulator, fal_conn, capsys):
    emulator.inject("reset_after_accept", route="submit", times=2)  # the first submit of each task
    dr = _dag("kling_uncertain_submit").test()
    log = capsys.readouterr().out

    # Each task's job was created (and paid) once; neither retry submitted again.
    assert sum(emulator.submissions.values()) == 2
    assert emulator.requests["submit"] == 2
    # Both failed on their first try, without spending their retry on a second payment.
    assert _tries(dr) == {"sync": ("failed", 1), "deferred": ("failed", 1)}
    assert log.count("may or may not have reached fal") >= 2
    assert log.count("Not retrying the task: a retry would have to submit again") >= 2
    assert "check your requests on the fal dashboard" in log.lower()
    assert "resubmit_if_uncertain=True" in log


def test_opt_in_resubmits_on_the_retry(airflow_db, emulator, fal_conn, capsys):
    emulator.inject("reset_after_accept", route="submit", times=1)
    dr = _dag("kling_uncertain_resubmit").test()
    log = capsys.readouterr().out

    assert _tries(dr) == {"video": ("success", 2)}
    assert sum(emulator.submissions.values()) == 2  # asked for: the lost job, and the retry's
    assert "may have created a paid fal job: try 1 sent a submit to" in log
    assert "resubmit_if_uncertain=True: submitting again" in log
