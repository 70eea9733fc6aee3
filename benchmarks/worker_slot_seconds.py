"""Worker-slot seconds of one Kling job: deferrable vs. sync, against the fal emulator.

A deferrable task holds a worker slot only on either side of the deferral: ``execute()``
(validate, upload, submit, defer) and ``execute_complete()`` (fetch the result, push XComs). The
wait itself runs in the triggerer. This script runs one job per mode through ``dag.test()`` (real
task runner and execution API, trigger inline) with an operator subclass that timestamps both
methods, and prints worker time next to the job's total time.

    .venv/bin/python benchmarks/worker_slot_seconds.py [--processing-time 10] [--runs 3]

What it does not include: Airflow's own start-up of each try in a real deployment (executor
fork/spawn, DAG parse; ~1-2 s per try on this machine class, see airflow-runtime-notes.md), which a
deferrable task pays twice and a sync task once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DAG_FILE = '''
from __future__ import annotations

import json
import os
import time
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingVideoOperator


class TimedKlingVideoOperator(KlingVideoOperator):
    """Records when each worker-side method starts and ends."""

    def _record(self, phase, start):
        with open(os.environ["KLING_BENCH_OUT"], "a") as out:
            out.write(json.dumps({"task": self.task_id, "phase": phase, "start": start, "end": time.time()}) + "\\n")

    def execute(self, context):
        start = time.time()
        try:
            return super().execute(context)
        finally:  # TaskDeferred is a BaseException: recorded too
            self._record("execute", start)

    def execute_complete(self, context, event=None, stored=None):
        start = time.time()
        try:
            return super().execute_complete(context, event=event, stored=stored)
        finally:
            self._record("execute_complete", start)


ARGS = {"prompt": "a slow pan over a mountain lake at dawn", "duration": "5"}
with DAG(dag_id="kling_bench_deferrable", schedule=None, start_date=datetime(2026, 1, 1)):
    TimedKlingVideoOperator(
        task_id="job", endpoint_id="fal-ai/kling-video/v1.6/standard/text-to-video", arguments=ARGS,
        deferrable=True, poll_interval=1.0,
    )
with DAG(dag_id="kling_bench_sync", schedule=None, start_date=datetime(2026, 1, 1)):
    TimedKlingVideoOperator(
        task_id="job", endpoint_id="fal-ai/kling-video/v1.6/standard/text-to-video", arguments=ARGS,
        deferrable=False, poll_interval=1.0,
    )
'''


PHASES = ("execute", "execute_complete")


def _setup_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="kling-bench-home-"))
    (home / "dags").mkdir()
    (home / "dags" / "kling_bench.py").write_text(DAG_FILE)
    os.environ.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__API_AUTH__JWT_SECRET="kling-bench-" + "x" * 64,
        KLING_BENCH_OUT=str(home / "timings.jsonl"),
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return home


def _measure(dag, out: Path) -> dict[str, float]:
    out.write_text("")
    dr = dag.test()
    if dr.state != "success":
        raise SystemExit(f"{dag.dag_id} ended {dr.state}")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    phase = {name: sum(r["end"] - r["start"] for r in rows if r["phase"] == name) for name in PHASES}
    total = max(r["end"] for r in rows) - min(r["start"] for r in rows)
    return {"worker": sum(phase.values()), "total": total, **phase}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processing-time", type=float, default=10.0, help="emulated generation seconds")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    home = _setup_home()
    try:
        # Imported only now: Airflow reads AIRFLOW_HOME at import time.
        import logging

        from airflow.dag_processing.dagbag import DagBag

        from airflow_provider_kling.emulator import FalEmulator

        logging.disable(logging.CRITICAL)
        bag = DagBag(dag_folder=str(home / "dags" / "kling_bench.py"))
        out = Path(os.environ["KLING_BENCH_OUT"])
        with FalEmulator(processing_time=args.processing_time, queue_delay=0.0) as emu:
            os.environ["AIRFLOW_CONN_FAL_DEFAULT"] = emu.connection_json(key="bench-id:bench-secret")
            results: dict[str, list[dict[str, float]]] = {"deferrable": [], "sync": []}
            for _ in range(args.runs):
                for mode in results:
                    results[mode].append(_measure(bag.get_dag(f"kling_bench_{mode}"), out))
        print(f"emulated generation time: {args.processing_time:g} s, {args.runs} run(s) per mode")
        print(
            f"{'mode':<11} {'execute s':>10} {'complete s':>11} {'worker s':>9} {'job s':>8} {'worker share':>13}"
            "   (medians)"
        )
        for mode, rows in results.items():
            med = {k: statistics.median(r[k] for r in rows) for k in ("worker", "total", *PHASES)}
            print(
                f"{mode:<11} {med['execute']:>10.3f} {med['execute_complete']:>11.3f} {med['worker']:>9.3f} "
                f"{med['total']:>8.3f} {med['worker'] / med['total']:>12.1%}"
            )
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
