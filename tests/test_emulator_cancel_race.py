"""A cancel that lands between the dispatcher taking a job off the queue and the job's runner
starting (the job still says IN_QUEUE) completes it as cancelled, once, with a 200 answer.

It used to look for the job in the queue it had just left and fail with a 500, so the client
retried the cancel and the emulator counted two cancellations of one request.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from airflow_provider_kling.emulator.queue import COMPLETED, IN_QUEUE, Job, JobQueue
from airflow_provider_kling.emulator.state import Knobs


def _never(job: Job) -> object:  # pragma: no cover - a cancelled-before-start job never gets here
    raise AssertionError(f"{job.request_id} was processed after its cancel")


async def test_cancel_between_dispatch_and_run_completes_the_job_as_cancelled():
    with ThreadPoolExecutor(1) as executor:
        queue = JobQueue(Knobs(processing_time=60.0), executor, _never, _never)  # type: ignore[arg-type]
        queue.start()
        job = Job("r-1", "fal-ai/kling-video/x", "fal-ai/kling-video", {}, "http://127.0.0.1")
        queue.submit(job)
        for _ in range(100):  # until the dispatcher has made the job's runner task
            if job.task is not None:
                break
            await asyncio.sleep(0)
        assert job.task is not None and job.state == IN_QUEUE, "the dispatcher did not pick the job up"
        assert queue.cancel(job) == "CANCELLATION_REQUESTED"
        assert job.state == COMPLETED and job.error_type is not None
        await asyncio.sleep(0.05)
        assert job.task.cancelled() and job.state == COMPLETED
        assert queue._running == set()  # the slot is free for the next job
        assert sum(queue._running_per_account.values()) == 0  # and its account's place too
        await queue.stop()
