"""The provider's share of parsing a DAG file: each example DAG against a one-task DAG without it.

Run: ``.venv/bin/python benchmarks/dag_parse.py [--rounds 7]``.

Airflow's DAG processor parses every file again and again, each time in a fresh process forked
from one that has Airflow's task SDK imported but not this provider. Each measurement here does the
same: a new interpreter imports ``airflow.sdk`` (and the standard provider's ``EmptyOperator``) and
the Airflow modules the file needs for its own sake (not those this provider pulls in), then the
clock runs while the DAG file executes (bytecode cached). The provider's share of a file
is its median CPU time (what the DAG processor pays; wall time on a shared machine mostly measures
the neighbours) minus the median of a DAG with one ``EmptyOperator`` measured the same way, in the
same run. It also lists the provider modules each file loaded: no ``models`` module (pydantic)
may be among them, because operators validate in ``execute``, not at parse time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 30.0
# The models modules that are plain data (the typed operators' parse-time checks read them); any other
# models module defines pydantic request models.
PLAIN_DATA_MODELS = frozenset(
    {
        "airflow_provider_kling.models",
        "airflow_provider_kling.models.keywords",
        "airflow_provider_kling.models.capability_table",
    }
)

PROBE = """
import importlib, json, os, runpy, sys, time
import airflow.sdk
from airflow.sdk import DAG, BaseOperator, task
from airflow.providers.standard.operators.empty import EmptyOperator
for name in json.loads(sys.argv[2]):
    try:
        importlib.import_module(name)
    except Exception:
        pass
before = set(sys.modules)
started = time.process_time()
runpy.run_path(sys.argv[1], run_name="__dagfile__")
elapsed = time.process_time() - started
new = set(sys.modules) - before
loaded = sorted(m for m in new if m.startswith("airflow_provider_kling"))
print(json.dumps({"ms": elapsed * 1000, "provider_modules": loaded, "other_modules": sorted(new - set(loaded))}))
"""

# What the provider's own modules import from elsewhere (counted as the provider's cost).
PROVIDER_IMPORTS = """
import json, sys
import airflow.sdk
from airflow.sdk import DAG, BaseOperator, task
from airflow.providers.standard.operators.empty import EmptyOperator
before = set(sys.modules)
import airflow_provider_kling.operators.kling, airflow_provider_kling.operators.storage
import airflow_provider_kling.sensors.kling
print(json.dumps(sorted(set(sys.modules) - before)))
"""

BASELINE = """
from datetime import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("baseline", start_date=datetime(2025, 1, 1), schedule=None):
    EmptyOperator(task_id="only")
"""


def parse_ms(path: Path, env: dict[str, str], preload: list[str] | None = None) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), json.dumps(preload or [])],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="kling-parse-")
    env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    baseline = Path(home) / "baseline_dag.py"
    baseline.write_text(BASELINE)
    files = [baseline, *sorted((ROOT / "example_dags").glob("*.py"))]
    provider_imports = set(
        json.loads(
            subprocess.run(
                [sys.executable, "-c", PROVIDER_IMPORTS], capture_output=True, text=True, env=env, check=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )
    )
    # Airflow modules a DAG file needs for its own sake (HITL operators, timetables...) are Airflow's
    # cost, and the dag processor may have them loaded already: they are imported before the clock
    # starts. What the provider's modules import stays on the clock.
    preload: dict[Path, list[str]] = {}
    for path in files:  # also compiles each file once: the DAG processor parses with bytecode
        first = parse_ms(path, env)
        others = set(first["other_modules"])  # type: ignore[call-overload]
        preload[path] = sorted(others - provider_imports)
    samples: dict[Path, list[float]] = {path: [] for path in files}
    modules: dict[Path, list[str]] = {}
    for _ in range(args.rounds):  # interleaved, so a busy moment hits every file alike
        for path in files:
            result = parse_ms(path, env, preload[path])
            samples[path].append(float(result["ms"]))  # type: ignore[arg-type]
            modules[path] = list(result["provider_modules"])  # type: ignore[call-overload]
    base = statistics.median(samples[baseline])
    print(f"baseline (one EmptyOperator): {base:.1f} ms (median of {args.rounds})\n")
    print("| DAG file | parse CPU ms (median) | provider's share ms | pydantic models loaded |")
    print("|---|---|---|---|")
    worst = 0.0
    for path in files[1:]:
        median = statistics.median(samples[path])
        share = median - base
        worst = max(worst, share)
        models = any(
            m.startswith("airflow_provider_kling.models") and m not in PLAIN_DATA_MODELS
            for m in modules[path]
        )
        print(f"| {path.name} | {median:.1f} | {share:+.1f} | {'yes' if models else 'no'} |")
    verdict = "holds" if worst <= GOAL_MS else "missed"
    print(f"\nworst share {worst:+.1f} ms per file; goal <= +{GOAL_MS:.0f} ms {verdict}")


if __name__ == "__main__":
    main()
