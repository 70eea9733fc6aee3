"""The README's "Testing your DAGs with the emulator" recipe, run from the README's own text.

The test file shown there is copied verbatim into a fresh project next to a small DAG and run by
pytest in a subprocess, as a user would: no AIRFLOW_HOME, no conftest, only the installed package's
pytest plugin. If the README and the plugin drift apart, this fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Testing your DAGs with the emulator"

MY_DAG = """
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingTextToVideoOperator

with DAG("my_kling_dag", schedule=None, start_date=datetime(2026, 1, 1)):
    KlingTextToVideoOperator(
        task_id="generate", prompt="A heron lands on a frozen lake", model="v1.6", tier="standard",
        deferrable=True, poll_interval=0.5,
    )
"""


def readme_test_file() -> tuple[str, str]:
    """(path, code) of the README's test file: the python block in the section whose first line
    names it (``# tests/....py``)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.find("\n## ", len(SECTION))]
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.S):
        first = block.splitlines()[0]
        if re.fullmatch(r"# tests/\w+\.py", first):
            return first[2:], block
    raise AssertionError(f"no '# tests/<name>.py' python block under {SECTION!r} in README.md")


def _user_env() -> dict[str, str]:
    """A user's shell: nothing of this suite's Airflow set-up, no fal key."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FAL_KEY", "PYTEST", "KLING_"))
    }


@pytest.mark.dagtest  # dag.test() in a pytest subprocess: an early start in parallel runs
def test_the_readme_recipe_runs_as_written(tmp_path):
    path, code = readme_test_file()
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "my_kling_dag.py").write_text(MY_DAG)
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_text(code)
    # A user's shell: nothing of this suite's Airflow set-up, no fal key.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FAL_KEY", "PYTEST", "KLING_"))
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", path],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    tests = len(re.findall(r"^def test_", code, flags=re.M))
    assert tests >= 2 and f"{tests} passed" in output, output[-3000:]
    # The plugin made a temporary AIRFLOW_HOME (nothing was set) and removed it afterwards.
    home = re.search(r"airflow-provider-kling: AIRFLOW_HOME=(\S+) \(temporary\)", output)
    assert home, output[:2000]
    assert not Path(home.group(1)).exists()


def test_the_temporary_home_can_be_turned_off(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\nkling_temporary_airflow_home = false\n")
    (tmp_path / "test_home.py").write_text(
        "import os\n\ndef test_home():\n    assert 'AIRFLOW_HOME' not in os.environ\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_home.py"],
        cwd=tmp_path,
        env=_user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "airflow-provider-kling: AIRFLOW_HOME=~/airflow (Airflow's default)" in done.stdout
