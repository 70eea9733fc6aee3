"""PollSchedule: jittered start, back-off on a standing queue, sparse start of a run, floor and cap."""

from __future__ import annotations

import random

import pytest

from airflow_provider_kling.exceptions import KlingConfigurationError
from airflow_provider_kling.protocol.polling import PollSchedule
from airflow_provider_kling.protocol.types import RequestStatus


def queued(position: int | None) -> RequestStatus:
    return RequestStatus(status="IN_QUEUE", request_id="r", queue_position=position)


RUNNING = RequestStatus(status="IN_PROGRESS", request_id="r")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_first_polls_of_many_followers_spread_over_one_interval():
    rng = random.Random(7)
    starts = [PollSchedule(5.0, rng=rng).first_delay() for _ in range(10_000)]
    assert min(starts) >= 0 and max(starts) <= 5.0
    # No lock-step: every half-second slot of the interval gets roughly a tenth of the starts.
    slots = [0] * 10
    for start in starts:
        slots[min(int(start / 0.5), 9)] += 1
    assert all(800 <= count <= 1200 for count in slots), slots


def test_standing_queue_backs_off_and_a_moving_one_resets():
    schedule = PollSchedule(5.0)
    assert schedule.max_interval == 30.0
    assert schedule.next_delay(queued(9)) == 5.0
    delays = [schedule.next_delay(queued(9)) for _ in range(6)]
    assert delays == [7.5, 11.25, 16.875, 25.3125, 30.0, 30.0]
    assert schedule.next_delay(queued(8)) == 5.0  # the queue moved: back to poll_interval


def test_a_started_run_is_polled_sparsely_until_it_could_be_done():
    clock = Clock()
    schedule = PollSchedule(5.0, clock=clock)
    schedule.next_delay(queued(0))
    delays = []
    for _ in range(8):
        delay = schedule.next_delay(RUNNING)
        delays.append(delay)
        clock.now += delay
    assert delays[:4] == [30.0, 15.0, 7.5, 5.0]
    assert delays[4:] == [5.0] * 4
    assert sum(delays[:4]) < 60 + 5  # never more than one interval late after the minimum runtime


def test_a_run_first_seen_already_running_gets_no_sparse_start():
    # After a triggerer restart the job may be near its end: poll at the normal rate.
    schedule = PollSchedule(5.0, clock=Clock())
    assert schedule.next_delay(RUNNING) == 5.0


@pytest.mark.parametrize("interval", [0.05, 1.0, 10.0, 120.0])
def test_never_faster_than_poll_interval(interval):
    clock = Clock()
    schedule = PollSchedule(interval, clock=clock)
    sequence = [queued(3), queued(3), queued(2), queued(None), RUNNING, RUNNING, queued(1)]
    for status in sequence:
        delay = schedule.next_delay(status)
        assert interval <= delay <= max(interval, schedule.max_interval)
        clock.now += delay


def test_bad_interval_is_refused():
    with pytest.raises(KlingConfigurationError, match="poll_interval must be a number > 0"):
        PollSchedule(0)
