"""``make demo``: generate a Kling video through Airflow, offline, and save the MP4 under ``out/``.

Starts the embedded fal emulator, prepares a local AIRFLOW_HOME (``.airflow-home/``), runs the
``example_kling_image_to_video`` DAG with ``airflow dags test`` (the deferrable path: the trigger
runs inline there, in a real deployment the triggerer runs it), then prints where the video is,
its fal request id and how long it all took. No API key, no network, no cost.

Run ``python -m airflow_provider_kling.demo`` (needs the ``emulator`` extra), from a checkout or
wherever the package is installed: the example DAGs ship inside the wheel. ``.airflow-home/`` and
``out/`` are made in the current directory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

DAG_ID = "example_kling_image_to_video"
# Lines of the DAG run worth showing live; the whole log goes to .airflow-home/demo.log.
_PREFIX = re.compile(r"^\S+ \[\w+\s*\]\s+")
_SUFFIX = re.compile(r"\s+\[\w+\.[\w.]+\]")  # " [airflow.task.operators...]": a dotted logger name
_INTERESTING = ("fal request", "Uploaded ", "Submitting to", "Saved ", "Video ready")


def _dags_folder() -> Path:
    """The example DAGs: inside the installed package (the wheel ships them), else the checkout's."""
    package = Path(__file__).resolve().parent
    for folder in (package / "example_dags", package.parent / "example_dags"):
        if (folder / f"{DAG_ID}.py").is_file():
            return folder
    raise SystemExit(
        f"the example DAGs are missing: neither {package / 'example_dags'} (installed wheel) nor "
        f"{package.parent / 'example_dags'} (source checkout) holds {DAG_ID}.py"
    )


def _airflow() -> str:
    """The ``airflow`` executable next to this Python (the venv), else the one on PATH."""
    candidate = Path(sys.executable).with_name("airflow")
    found = str(candidate) if candidate.exists() else shutil.which("airflow")
    if not found:
        raise SystemExit("the airflow command is missing: install the package with its test extra")
    return found


def _environment(dags: Path, home: Path, out: Path, connection: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_FAL_DEFAULT": connection,
            "KLING_OUTPUT_DIR": str(out),
            "KLING_POLL_INTERVAL": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    # A real key in the environment must not leak into the demo: it talks to the emulator only.
    for name in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET"):
        env.pop(name, None)
    return env


def _run_dag(airflow: str, env: dict[str, str], log_path: Path) -> int:
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [airflow, "dags", "test", DAG_ID],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if any(marker in line for marker in _INTERESTING):
                print(f"  | {_message(line)[:150]}", flush=True)
        return proc.wait()


def _message(line: str) -> str:
    """Airflow's log line without its timestamp/level prefix and logger/key=value suffix."""
    message = _PREFIX.sub("", line.rstrip(), count=1)
    suffix = _SUFFIX.search(message)
    return message[: suffix.start()] if suffix else message


def _newest_sidecar(folder: Path, since: float) -> dict[str, object] | None:
    sidecars = [p for p in folder.glob("*.json") if p.stat().st_mtime >= since]
    if not sidecars:
        return None
    return dict(json.loads(max(sidecars, key=lambda p: p.stat().st_mtime).read_text()))


def _decoded(path: Path) -> str:
    try:
        import av
    except ImportError:  # pragma: no cover - the emulator extra brings PyAV
        return "not decoded (PyAV missing)"
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        rate = float(stream.average_rate or stream.base_rate or 1)
        codec = stream.codec_context
        return f"{frames / rate:.1f} s, {codec.width}x{codec.height} {codec.name}, {frames} frames"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--processing-time", type=float, default=3.0, help="emulated generation seconds")
    args = parser.parse_args(argv)

    from airflow_provider_kling.emulator import FalEmulator
    from airflow_provider_kling.emulator.video import MissingVideoLibrariesError, require_video_libraries

    try:
        require_video_libraries()
    except MissingVideoLibrariesError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2

    started = time.monotonic()
    dags, root = _dags_folder(), Path.cwd()
    home, out = root / ".airflow-home", root / "out"
    home.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)

    with FalEmulator(processing_time=args.processing_time, queue_delay=1.0) as emulator:
        print(f"fal emulator on {emulator.url} (local; no key, no network, no cost)")
        env = _environment(dags, home, out, emulator.connection_json(key="demo-key:demo-secret"))
        airflow = _airflow()
        print(f"Preparing AIRFLOW_HOME={home} ...", flush=True)
        migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True)
        if migrate.returncode:
            print(migrate.stdout[-2000:], migrate.stderr[-3000:], sep="\n", file=sys.stderr)
            return 1
        print(f"Running DAG {DAG_ID} from {dags} (airflow dags test, deferrable) ...", flush=True)
        dag_started = time.time()
        code = _run_dag(airflow, env, home / "demo.log")
        dag_seconds = time.time() - dag_started
        submissions = sum(emulator.submissions.values())

    took = time.monotonic() - started
    saved = _newest_sidecar(out / "image_to_video", dag_started)
    if code != 0 or saved is None:
        print(f"\nThe DAG run failed (exit code {code}); full log: {home / 'demo.log'}", file=sys.stderr)
        return 1
    video = Path(str(saved["path"]).removeprefix("file://"))
    shown = video.relative_to(root) if video.is_relative_to(root) else video
    print(
        "\nDone.\n"
        f"  video:       {shown} ({video.stat().st_size:,} bytes; {_decoded(video)})\n"
        f"  request id:  {saved['request_id']} ({submissions} submission to fal)\n"
        f"  sidecar:     {shown.with_suffix('.json')}\n"
        f"  took:        {took:.1f} s in all ({dag_seconds:.1f} s for the DAG run)\n"
        f"  Airflow log: {home / 'demo.log'}\n"
        "Point the same DAG at real fal: see 'Use real fal' in README.md."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
