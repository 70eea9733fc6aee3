"""How long ``make demo`` takes, the number the README quotes.

Runs ``python -m airflow_provider_kling.demo`` (exactly what ``make demo`` runs) several times in one
scratch directory: the first run prepares a fresh ``.airflow-home`` (``airflow db migrate`` from
nothing), later runs reuse it, as a user's second ``make demo`` does. Each run's own "took" line is
parsed (total, and the ``airflow dags test`` part).

Baseline, measured the same way in the same directory: ``airflow dags test`` of a one-task DAG that
does nothing, i.e. what any DAG run costs through the Airflow CLI on this machine. The ratio is the
machine-independent figure; the absolute seconds are what the README quotes (on 2 cores).

    .venv/bin/python benchmarks/demo_timing.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOOK = re.compile(r"took:\s+([\d.]+) s in all \(([\d.]+) s for the DAG run\)")
NOOP_DAG = """
from datetime import datetime
from airflow.sdk import DAG, task

with DAG("bench_noop", schedule=None, start_date=datetime(2026, 1, 1)):
    @task
    def noop():
        return None
    noop()
"""


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FAL_KEY"))}


def _demo(work: Path) -> tuple[float, float, float]:
    """(wall seconds of the process, the demo's own total, its DAG-run part)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_kling.demo"],
        cwd=work,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.monotonic() - started
    took = TOOK.search(done.stdout)
    if done.returncode or not took:
        raise SystemExit(f"the demo failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall, float(took.group(1)), float(took.group(2))


def _noop_dag_run(work: Path) -> float:
    dags = work / "noop_dags"
    dags.mkdir(exist_ok=True)
    (dags / "bench_noop.py").write_text(NOOP_DAG)
    env = _clean_env()
    env.update(
        AIRFLOW_HOME=str(work / ".airflow-home"),  # the demo's, already migrated
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    started = time.monotonic()
    subprocess.run(
        [airflow, "dags", "test", "bench_noop"], env=env, capture_output=True, check=True, timeout=600
    )
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="demo runs (the first one on a fresh home)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kling-demo-bench-") as scratch:
        work = Path(scratch)
        runs = [_demo(work) for _ in range(max(1, args.runs))]
        baseline = statistics.median(_noop_dag_run(work) for _ in range(max(1, args.runs - 1)))
    first, later = runs[0], runs[1:] or runs
    dag_median = statistics.median(r[2] for r in later)
    print(f"make demo, {len(runs)} run(s) on {os.cpu_count()} CPU(s)")
    print(f"{'run':<22} {'wall s':>7} {'demo total s':>13} {'DAG run s':>10}")
    print(f"{'1st (fresh home)':<22} {first[0]:>7.1f} {first[1]:>13.1f} {first[2]:>10.1f}")
    for index, run in enumerate(runs[1:], start=2):
        print(f"{f'{index}. (home reused)':<22} {run[0]:>7.1f} {run[1]:>13.1f} {run[2]:>10.1f}")
    print(
        f"baseline: `airflow dags test` of a no-op DAG {baseline:.1f} s; demo DAG run (median, home reused) "
        f"{dag_median:.1f} s = {dag_median / baseline:.2f}x baseline "
        "(the demo's emulated generation is 1 s queue + 3 s processing)"
    )


if __name__ == "__main__":
    main()
