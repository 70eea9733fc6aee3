"""Cost cap (issue 14): refused before any upload or submit, against the emulator's counters."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from airflow_provider_kling.cost import CostBudget, effective_cap, parse_usd
from airflow_provider_kling.exceptions import KlingConfigurationError, KlingCostLimitError
from airflow_provider_kling.models import cost_budget, validate_arguments
from airflow_provider_kling.operators.kling import KlingImageToVideoOperator, KlingVideoOperator
from tests.test_operator_kling import _context

P = "fal-ai/kling-video/"
I2V_PRO = P + "v1.6/pro/image-to-video"
T2V = P + "v1.6/standard/text-to-video"
UNPRICED = P + "v2.5-turbo/pro/text-to-video"


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "cat.png"
    Image.new("RGB", (640, 360), (10, 20, 30)).save(path)
    return path


def _conn_with(monkeypatch: pytest.MonkeyPatch, emulator: Any, **extra: Any) -> str:
    conn = json.loads(emulator.connection_json(key="test-key-id:test-key-secret"))
    conn["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_FAL_CAPPED", json.dumps(conn))
    return "fal_capped"


def test_estimate_over_the_cap_is_refused_before_the_upload(emulator, fal_conn, image, capsys) -> None:
    op = KlingImageToVideoOperator(
        task_id="pro10", prompt="the cat turns", image=image, model="v1.6", tier="pro", duration=10
    )
    op.max_cost_usd = "0.50"  # as rendered from "{{ params.cap }}"
    with pytest.raises(KlingCostLimitError) as info:
        op.execute(_context())  # type: ignore[arg-type]
    message = str(info.value)
    # the estimate, the cap, and how the estimate was computed
    assert "$0.980 exceeds task max_cost_usd $0.50" in message
    assert "10 s x $0.098/s" in message and "Nothing was uploaded or submitted" in message
    assert info.value.error_type == "cost_cap_exceeded"
    assert sum(emulator.requests.values()) == 0, dict(emulator.requests)  # no upload, no submit
    log = "".join(capsys.readouterr())  # the task logger writes through structlog
    assert "estimated cost 0.980 USD" in log and "cap 0.50 USD (task max_cost_usd)" in log


def test_connection_cap_applies_and_the_task_value_wins(emulator, monkeypatch) -> None:
    conn = _conn_with(monkeypatch, emulator, max_cost_usd="0.10")
    args = {"prompt": "a lighthouse", "duration": 5}  # 0.225 USD
    with pytest.raises(KlingCostLimitError, match=r"connection extra max_cost_usd \$0.10"):
        KlingVideoOperator(task_id="c", endpoint_id=T2V, arguments=args, fal_conn_id=conn).execute(_context())  # type: ignore[arg-type]
    assert sum(emulator.submissions.values()) == 0

    op = KlingVideoOperator(
        task_id="t", endpoint_id=T2V, arguments=args, fal_conn_id=conn, max_cost_usd=1, poll_interval=0.05
    )
    output = op.execute(_context())  # type: ignore[arg-type]
    assert output["cost_estimate"] == "0.225" and output["max_cost_usd"] == "1"
    assert emulator.submissions[T2V] == 1


def test_unknown_price_under_a_cap_needs_allow_unknown_cost(emulator, fal_conn) -> None:
    args = {"prompt": "a turbo fox"}
    with pytest.raises(KlingCostLimitError, match="allow_unknown_cost=True") as info:
        KlingVideoOperator(task_id="u", endpoint_id=UNPRICED, arguments=args, max_cost_usd=5).execute(
            _context()  # type: ignore[arg-type]
        )
    assert info.value.error_type == "cost_unknown"
    assert sum(emulator.requests.values()) == 0

    op = KlingVideoOperator(
        task_id="u2",
        endpoint_id=UNPRICED,
        arguments=args,
        max_cost_usd=5,
        allow_unknown_cost=True,
        poll_interval=0.05,
    )
    output = op.execute(_context())  # type: ignore[arg-type]
    assert output["cost_estimate"] is None and output["max_cost_usd"] == "5"
    assert emulator.submissions[UNPRICED] == 1


def test_no_cap_no_check_and_the_xcom_says_so(emulator, fal_conn) -> None:
    output = KlingVideoOperator(
        task_id="n", endpoint_id=UNPRICED, arguments={"prompt": "x"}, poll_interval=0.05
    ).execute(_context())  # type: ignore[arg-type]
    assert output["max_cost_usd"] is None and output["cost_estimate"] is None


def test_reattach_is_not_checked_or_counted_again(emulator, fal_conn) -> None:
    """A retry that reuses the paid request neither re-checks the cap nor submits."""
    from tests.test_operator_kling import DictStateStore, RecordingTI

    store = DictStateStore()
    args = {"prompt": "a lighthouse", "duration": 5}
    first = KlingVideoOperator(
        task_id="r", endpoint_id=T2V, arguments=args, max_cost_usd="0.30", poll_interval=0.05
    )
    done = first.execute(_context(RecordingTI(try_number=1, max_tries=1), store))  # type: ignore[arg-type]
    # The cap is lowered before the retry: the request is already paid for, so it is reused.
    again = KlingVideoOperator(
        task_id="r", endpoint_id=T2V, arguments=args, max_cost_usd="0.01", poll_interval=0.05
    )
    output = again.execute(_context(RecordingTI(try_number=2, max_tries=1), store))  # type: ignore[arg-type]
    assert output["request_id"] == done["request_id"] and output["max_cost_usd"] == "0.01"
    assert emulator.submissions[T2V] == 1


def test_bad_caps_fail_at_parse_time_and_templates_wait() -> None:
    with pytest.raises(KlingConfigurationError, match="max_cost_usd must be a non-negative number"):
        KlingVideoOperator(task_id="b", endpoint_id=T2V, arguments={"prompt": "x"}, max_cost_usd="ten")
    for bad in (-1, True, "nan", "inf"):
        with pytest.raises(KlingConfigurationError):
            parse_usd(bad, "max_cost_usd")
    op = KlingVideoOperator(
        task_id="t", endpoint_id=T2V, arguments={"prompt": "x"}, max_cost_usd="{{ params.cap }}"
    )
    assert "max_cost_usd" in op.template_fields
    assert parse_usd(" 0.5 ", "x") == Decimal("0.5") and parse_usd("", "x") is None


def test_cap_source_and_explanations() -> None:
    assert effective_cap(None, "2") == (Decimal("2"), "connection extra max_cost_usd")
    assert effective_cap("1", "2") == (Decimal("1"), "task max_cost_usd")
    assert effective_cap(None, None) == (None, "")
    master = cost_budget(
        P + "v2/master/text-to-video",
        validate_arguments(P + "v2/master/text-to-video", {"prompt": "x", "duration": 10}),
    )
    assert (
        master.estimate == Decimal("2.80") and "$1.40 for the first 5 s + $0.28/s after, 10 s" in master.basis
    )
    audio = cost_budget(
        P + "v2.6/pro/image-to-video",
        validate_arguments(
            P + "v2.6/pro/image-to-video", {"prompt": "x", "start_image_url": "https://e.com/a.png"}
        ),
        max_cost_usd="0.5",
    )
    assert audio.estimate == Decimal("0.70") and "generate_audio" in audio.basis
    with pytest.raises(KlingCostLimitError, match=r"\$0.70 exceeds task max_cost_usd \$0.5"):
        audio.enforce()
    override = cost_budget(T2V, {"prompt": "x"}, prices={T2V: {"per_clip": "0.01"}}, max_cost_usd="0.02")
    override.enforce()
    assert override.basis == "$0.01 per clip (connection extra 'prices')" and override.estimate_cents == 1
    assert CostBudget(T2V, Decimal("0.225"), "b").estimate_cents == 23  # rounded up


@pytest.mark.dagtest
def test_mapped_dag_over_the_cap_submits_nothing(airflow_db, emulator, fal_conn, image, capsys) -> None:
    from tests.test_operator_dags import _dag, _states

    dr = _dag("kling_cost_cap").test(run_conf={"image_path": str(image)})
    states = _states(dr)
    assert dr.state == "failed", states
    assert states == {f"capped[{i}]": "failed" for i in range(3)}, states
    assert sum(emulator.requests.values()) == 0, dict(emulator.requests)  # no upload, no submit
    log = capsys.readouterr().out
    assert log.count("the estimated cost $0.980 exceeds task max_cost_usd $0.50") == 3
