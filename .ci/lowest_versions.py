"""Pin the lowest versions pyproject.toml allows, for the lowest-versions test venv (``make test-lowest``).

Every runtime dependency of the package (base and ``emulator`` extra) is resolved to the lowest version
its floor allows (``uv pip compile --resolution lowest-direct``). Airflow itself stays at the oldest
release the suite is pinned to (``constraints/airflow-3.1.8-py3.11.txt``), with its own dependencies from
that file: Airflow is installed with a constraints file by design, and an unconstrained old Airflow
pulls today's newest libraries, which it predates (3.1.0 does not even import with structlog 26).
Test tools (pytest, jsonschema, ...) stay at their constrained versions too: they are not the package.

    python .ci/lowest_versions.py OUT_DIR   # writes OUT_DIR/lowest.txt, prints the pinned direct deps
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_CONSTRAINTS = ROOT / "constraints" / "airflow-3.1.8-py3.11.txt"
# Pinned by the constraints file although we depend on them: their floors are what is under test.
# pydantic-core moves in lockstep with pydantic, so its pin goes too.
_COMPANIONS = {"pydantic-core"}


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise SystemExit(f"unreadable requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def runtime_names(pyproject: dict) -> set[str]:
    project = pyproject["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["emulator"]]
    return {_name(r) for r in requirements} - {"apache-airflow"}


def main(out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    freed = runtime_names(pyproject) | _COMPANIONS
    kept = [
        line
        for line in AIRFLOW_CONSTRAINTS.read_text().splitlines()
        if line.strip() and not line.startswith("#") and _name(line) not in freed
    ]
    constraints = out / "airflow-constraints.txt"
    constraints.write_text("\n".join(kept) + "\n")
    lowest = out / "lowest.txt"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "uv",
            "pip",
            "compile",
            "-q",
            "--resolution",
            "lowest-direct",
            "--python-version",
            f"{sys.version_info.major}.{sys.version_info.minor}",
            "--extra",
            "emulator",
            "--extra",
            "test",
            "-c",
            str(constraints),
            str(ROOT / "pyproject.toml"),
            "-o",
            str(lowest),
        ],
        check=True,
    )
    pins = {
        _name(line): line.strip()
        for line in lowest.read_text().splitlines()
        if "==" in line and not line.startswith(("#", " "))
    }
    print(
        "lowest direct versions:", ", ".join(pins[n] for n in sorted(freed | {"apache-airflow"}) if n in pins)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
