"""What ``uv build`` produces is publishable: licence, metadata, entry points, and a demo that runs
from the installed wheel (not only from a checkout)."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from airflow_provider_kling import __version__

ROOT = Path(__file__).resolve().parent.parent
DIST = f"airflow_provider_kling-{__version__}"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "uv", "build", "-q", "--out-dir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return {"wheel": out / f"{DIST}-py3-none-any.whl", "sdist": out / f"{DIST}.tar.gz"}


def _wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        return email.message_from_bytes(zf.read(f"{DIST}.dist-info/METADATA"))


def test_license_file_is_in_the_wheel_and_the_sdist(built):
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    with zipfile.ZipFile(built["wheel"]) as zf:
        assert zf.read(f"{DIST}.dist-info/licenses/LICENSE").decode() == license_text
    with tarfile.open(built["sdist"]) as tf:
        names = set(tf.getnames())
        assert {f"{DIST}/LICENSE", f"{DIST}/CHANGELOG.md", f"{DIST}/README.md"} <= names
        member = tf.extractfile(f"{DIST}/LICENSE")
        assert member is not None and member.read().decode() == license_text


def test_wheel_metadata_is_complete(built):
    meta = _wheel_metadata(built["wheel"])
    assert meta["Name"] == "airflow-provider-kling" and meta["Version"] == __version__
    assert meta["License-Expression"] == "Apache-2.0" and meta["License-File"] == "LICENSE"
    assert meta["Requires-Python"] == ">=3.10"
    assert meta["Author"] or meta["Author-email"]
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL"))
    # Airflow shows the "Documentation" URL as the provider's documentation-url.
    assert urls["Documentation"].startswith("https://")
    classifiers = set(meta.get_all("Classifier"))
    assert {
        "Framework :: Apache Airflow",
        "Framework :: Apache Airflow :: Provider",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.13",
        "Operating System :: OS Independent",
    } <= classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)
    assert any(c.startswith("Topic ::") for c in classifiers)
    assert "## Versioning policy" not in (meta.get_payload() or "")  # README is the description
    assert "pip install" in (meta.get_payload() or "")
    extras = {r for r in meta.get_all("Requires-Dist") if "extra == 'emulator'" in r}
    assert all(">=" in r for r in extras), extras  # floors, so lowest-version resolution builds


def test_wheel_ships_the_pytest_plugin_and_the_demo_data_but_no_tests(built):
    with zipfile.ZipFile(built["wheel"]) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(f"{DIST}.dist-info/entry_points.txt").decode()
    assert "[pytest11]" in entry_points and "airflow_provider_kling.testing.pytest_plugin" in entry_points
    assert {
        "airflow_provider_kling/demo.py",
        "airflow_provider_kling/testing/pytest_plugin.py",
        "airflow_provider_kling/example_dags/example_kling_image_to_video.py",
        "airflow_provider_kling/example_dags/sample_winter_road.png",
        "airflow_provider_kling/py.typed",
    } <= names
    assert not any(name.startswith("tests/") for name in names)


@pytest.mark.dagtest  # `airflow dags test` in a subprocess: an early start in parallel runs
def test_the_demo_runs_from_the_unpacked_wheel(built, tmp_path):
    """The wheel's own files, not the checkout's: the unpacked wheel comes first on sys.path, and
    the demo runs in a directory of its own."""
    site = tmp_path / "site"
    with zipfile.ZipFile(built["wheel"]) as zf:
        zf.extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FAL_KEY"))}
    env["PYTHONPATH"] = str(site)
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_kling.demo", "--processing-time", "0.3"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Done." in done.stdout and "(1 submission to fal)" in done.stdout
    videos = list((work / "out" / "image_to_video").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 10_000
    assert f"from {site / 'airflow_provider_kling' / 'example_dags'} (airflow dags test" in done.stdout


@pytest.mark.parametrize(
    "code",
    [
        "from airflow_provider_kling.emulator import FalEmulator\nFalEmulator().start()",
        "from airflow_provider_kling.emulator.__main__ import main\nsys.exit(main([]))",
    ],
    ids=["FalEmulator", "kling-emulator"],
)
def test_the_emulator_refuses_to_start_without_pyav(code):
    # PyAV made unimportable, as on an install without the `emulator` extra.
    script = f"import sys\nsys.modules['av'] = None\n{code}\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "needs PyAV, which is not installed" in done.stderr
    assert "pip install 'airflow-provider-kling[emulator]'" in done.stderr


def test_airflow_shows_the_documentation_url():
    # Airflow reads it from the installed distribution's "Documentation" Project-URL.
    from airflow.providers_manager import ProvidersManager

    provider = ProvidersManager().providers["airflow-provider-kling"]
    assert provider.data["documentation-url"] == "https://pypi.org/project/airflow-provider-kling/"
