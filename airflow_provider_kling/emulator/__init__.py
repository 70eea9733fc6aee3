"""A faithful local fal.ai queue server (queue, storage and CDN routes) for tests, demos and the CLI.

It never imports Airflow, so it starts fast and can run next to any Airflow process::

    from airflow_provider_kling.emulator import FalEmulator

    with FalEmulator(processing_time=0.3) as emu:
        os.environ["AIRFLOW_CONN_FAL_DEFAULT"] = emu.connection_json(key="id:secret")
        ...

or out of process: ``kling-emulator --port 8080`` (prints an ``export AIRFLOW_CONN_FAL_DEFAULT=...``
line; knobs, faults and counters over ``/_emulator/{stats,config,inject,fail_next,reset}``).

Where fal's behaviour is not documented the emulator makes a choice; each is marked here:

* result before completion: ``400 {"detail": "Request is still in progress"}``;
* unknown request id on status/result/stream: ``404 {"detail": "Request not found"}``; ids are
  scoped to ``[namespace/]owner/alias``, so asking under another app is also a 404;
* cancel: queued -> 202 CANCELLATION_REQUESTED and the job is dropped from the queue, in progress
  -> 202 and it stops at once; either way it COMPLETES with error "Request cancelled by the
  client", error_type ``client_cancelled`` and its result answers 499 (fal's code for that type);
  completed -> 400 ALREADY_COMPLETED; unknown -> 404 NOT_FOUND;
* invalid input (422 at result time): the status ``error`` is "Invalid status code: 422" (the
  text fal puts in webhooks) and ``error_type`` is the first detail entry's ``type``;
* an ``X-Fal-Request-Timeout`` that passes while queued completes the job with 504
  ``request_timeout`` and ``X-Fal-Request-Timeout-Type: user``; ``X-Fal-Queue-Priority: low``
  queues behind normal-priority jobs;
* log timestamps are ISO-8601 UTC without offset; each status carries the last ``log_window``
  entries; SSE events carry the same window (not just new entries);
* lipsync clips last as long as their input video when it is stored on the emulator (clamped
  to 2-10 s), else 5 s; other endpoints use ``duration`` (default 5 s, clamped to 1-15 s);
* input URLs on other hosts are never fetched (no network): a generated frame is used instead;
* a ``malformed_json`` fault on submit does not create a job (only ``reset_after_accept`` does);
* CDN upload routes require the bearer token from ``/storage/auth/token`` even when
  ``require_key`` is None; presigned PUT URLs need no credentials.
"""

from __future__ import annotations

from airflow_provider_kling.emulator.server import FalEmulator

__all__ = ["FalEmulator"]
