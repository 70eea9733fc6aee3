"""What reading the ``fal`` connection costs inside a real triggerer, through its supervisor.

Run: ``.venv/bin/python benchmarks/connection_lookup.py [--n 200]`` (boots api-server, scheduler,
dag-processor and triggerer on loopback, ~2 minutes).

In a triggerer, ``aget_connection`` is a round trip from the trigger runner to its supervisor
process, which asks the api-server (Execution API), which reads the metadata database. A trigger
that reads its connection itself pays that once per trigger: a triggerer restart with 10,000 deferred
Kling jobs makes 10,000 of them. Here one deferred task's trigger times ``--n`` reads of a database
connection through that path, then ``--n`` reads through the provider's per-loop shared read (what
every Kling trigger now does), and reports both.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TRIGGER = """
from __future__ import annotations

import statistics
import time

from airflow.triggers.base import BaseTrigger, TriggerEvent


class LookupTrigger(BaseTrigger):
    def __init__(self, conn_id: str, n: int) -> None:
        super().__init__()
        self.conn_id, self.n = conn_id, n

    def serialize(self):
        return ("kling_lookup_trigger.LookupTrigger", {"conn_id": self.conn_id, "n": self.n})

    async def run(self):
        from airflow_provider_kling.hooks.kling import KlingHook

        def summary(samples):
            ordered = sorted(samples)
            return {
                "median_ms": statistics.median(ordered) * 1000,
                "p99_ms": ordered[int(0.99 * (len(ordered) - 1))] * 1000,
                "total_ms": sum(ordered) * 1000,
            }

        direct = []
        for _ in range(self.n):
            started = time.perf_counter()
            await KlingHook(self.conn_id)._aload_settings()  # what each trigger did on its own
            direct.append(time.perf_counter() - started)
        shared = []
        for _ in range(self.n):
            started = time.perf_counter()
            await KlingHook(self.conn_id, shared_client=True)._asettings()
            shared.append(time.perf_counter() - started)
        yield TriggerEvent({"n": self.n, "per_trigger_read": summary(direct), "shared_read": summary(shared)})
"""

DAG = """
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, BaseOperator
from kling_lookup_trigger import LookupTrigger


class Measure(BaseOperator):
    def __init__(self, n: int, **kwargs):
        super().__init__(**kwargs)
        self.n = n

    def execute(self, context):
        self.defer(trigger=LookupTrigger(conn_id="fal_lookup", n=self.n), method_name="done")

    def done(self, context, event):
        return event


with DAG("kling_connection_lookup", schedule=None, start_date=datetime(2025, 1, 1)):
    Measure(task_id="measure", n={n})
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    from airflow_stack import AirflowStack

    home = Path(tempfile.mkdtemp(prefix="kling-lookup-"))
    (home / "plugins").mkdir()
    (home / "plugins" / "kling_lookup_trigger.py").write_text(textwrap.dedent(TRIGGER))
    dag_file = home / "kling_connection_lookup.py"
    dag_file.write_text(textwrap.dedent(DAG).replace("{n}", str(args.n)))
    stack = AirflowStack(
        home / "airflow", [dag_file], {"AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins")}
    )
    try:
        stack.start()
        stack.api.post(
            "/connections",
            json={
                "connection_id": "fal_lookup",
                "conn_type": "fal",
                "host": "http://127.0.0.1:9",
                "password": "lookup-id:lookup-secret",
            },
        ).raise_for_status()
        stack.wait_dag("kling_connection_lookup", timeout=120)
        stack.trigger("kling_connection_lookup", "lookup")
        run = stack.wait_run("kling_connection_lookup", "lookup", timeout=300)
        if run["state"] != "success":
            print(stack.component_log("triggerer"), file=sys.stderr)
            raise SystemExit(f"run ended {run['state']}")
        result = stack.xcom("kling_connection_lookup", "lookup", "measure")
    finally:
        stack.stop()
    direct, shared = result["per_trigger_read"], result["shared_read"]
    print(f"{result['n']} reads of a database connection inside a real triggerer:")
    print(
        f"  per trigger (aget_connection through the supervisor): median {direct['median_ms']:.2f} ms, "
        f"p99 {direct['p99_ms']:.2f} ms"
    )
    print(
        f"  shared per loop and conn id (what Kling triggers do): median {shared['median_ms']:.4f} ms, "
        f"p99 {shared['p99_ms']:.4f} ms"
    )
    print(
        f"  a restart with 10,000 deferred jobs: {10_000 * direct['median_ms'] / 1000:.1f} s of lookups "
        f"before, one lookup ({direct['median_ms']:.1f} ms) now"
    )


if __name__ == "__main__":
    main()
