"""Persisted videos are whole and exclusive, and never replace another paid-for video.

Against the purpose-built media server (tests/storage_server.py): a body cut half-way with no
size announced, two writers racing for one ``overwrite=False`` name, destinations that cannot be
written, and URL sources without a request id saved into one folder.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from storage_server import MediaServer, payload

from airflow_provider_kling.operators.storage import KlingDownloadError, KlingVideoToObjectStorageOperator
from airflow_provider_kling.protocol.mp4 import Mp4Boxes


@pytest.fixture
def media():
    with MediaServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def mp4_bytes(tmp_path_factory) -> bytes:
    """A real H.264 MP4, as the emulator renders Kling outputs."""
    from airflow_provider_kling.emulator.video import ClipSpec, write_mp4

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_mp4(ClipSpec(duration=1.0, size=(64, 64), text="whole"), path)
    return path.read_bytes()


def _op(**kwargs: Any) -> KlingVideoToObjectStorageOperator:
    kwargs.setdefault("task_id", "persist")
    kwargs.setdefault("download_backoff", 0.01)
    return KlingVideoToObjectStorageOperator(**kwargs)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# -- 9.4: unknown size -----------------------------------------------------------------------------


def test_mp4_cut_half_way_without_content_length_is_not_saved(media, mp4_bytes, tmp_path):
    media.mp4 = mp4_bytes
    half = len(mp4_bytes) // 2
    with pytest.raises(KlingDownloadError, match=r"incomplete download .* MP4 is not whole") as info:
        _op(source=f"{media.url}/mp4/clip.mp4?send={half}", destination=f"{tmp_path}/clip.mp4").execute({})
    assert f"{half} bytes received" in str(info.value)
    assert media.hits["mp4"] == 3  # a cut connection is worth the other attempts
    assert _files(tmp_path) == []  # nothing in place, no temporary left behind


def test_whole_mp4_without_content_length_is_saved(media, mp4_bytes, tmp_path):
    media.mp4 = mp4_bytes
    out = _op(source=f"{media.url}/mp4/clip.mp4", destination=f"{tmp_path}/clip.mp4").execute({})
    assert (tmp_path / "clip.mp4").read_bytes() == mp4_bytes
    assert out["size"] == len(mp4_bytes) and media.hits["mp4"] == 1


def test_box_walker_accepts_any_chunking_and_names_the_cut(mp4_bytes):
    for step in (1, 7, 4096, len(mp4_bytes)):
        boxes = Mp4Boxes()
        for start in range(0, len(mp4_bytes), step):
            boxes.feed(mp4_bytes[start : start + step])
        assert boxes.problem() is None, step
        assert {"ftyp", "moov", "mdat"} <= set(boxes.types)
    cut = Mp4Boxes()
    cut.feed(mp4_bytes[:-1])
    assert "cut" in (cut.problem() or "")
    garbage = Mp4Boxes()
    garbage.feed(b"<html>not a video</html>")
    assert garbage.problem() is not None


# -- 9.3: overwrite=False is exclusive --------------------------------------------------------------


def test_racing_writers_to_one_name_with_overwrite_false_one_wins_and_xcom_matches_disk(media, tmp_path):
    media.gate = threading.Barrier(2)  # both pass the "exists?" check, then both download
    target = tmp_path / "clip.mp4"
    outcomes: dict[int, Any] = {}

    def persist(size: int) -> None:
        try:
            outcomes[size] = _op(
                source=f"{media.url}/gate/x.mp4?size={size}", destination=str(target), overwrite=False
            ).execute({})
        except BaseException as exc:
            outcomes[size] = exc

    threads = [threading.Thread(target=persist, args=(size,)) for size in (3000, 5000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    winners = [o for o in outcomes.values() if isinstance(o, dict)]
    losers = [o for o in outcomes.values() if isinstance(o, BaseException)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert isinstance(losers[0], FileExistsError) and "overwrite=False" in str(losers[0])
    data = target.read_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest()) == (winners[0]["size"], winners[0]["sha256"])
    assert _files(tmp_path) == ["clip.mp4"]


# -- 9.6: destinations that cannot be written --------------------------------------------------------


def test_parent_that_is_a_file_is_named_in_one_sentence(media, tmp_path):
    (tmp_path / "videos").write_text("I am a file")
    dest = tmp_path / "videos" / "day1" / "clip.mp4"
    with pytest.raises(KlingDownloadError) as info:
        _op(source=f"{media.url}/video/x.mp4?size=10", destination=str(dest)).execute({})
    assert (
        str(info.value) == f"Cannot save the video to {dest}: {tmp_path / 'videos'} is a file, not a folder."
    )
    assert sum(media.hits.values()) == 0


def test_unwritable_folder_is_named_in_one_sentence(media, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):  # root ignores modes; sysfs refuses new files even to root
        folder = Path("/sys")
    dest = folder / "clip.mp4"
    try:
        with pytest.raises(
            KlingDownloadError, match=r"^Cannot save the video to .*clip\.mp4: permission denied"
        ):
            _op(source=f"{media.url}/video/x.mp4?size=10", destination=str(dest)).execute({})
    finally:
        (tmp_path / "locked").chmod(0o700)
    assert not dest.exists()


# -- 10.1: URL sources never replace each other --------------------------------------------------------


def test_two_url_sources_into_one_folder_keep_both_videos(media, tmp_path):
    folder = f"file://{tmp_path}/videos/"
    first = _op(source=f"{media.url}/video/output.mp4?size=4000", destination=folder).execute({})
    second = _op(source=f"{media.url}/video/output.mp4?size=6000", destination=folder).execute({})
    assert first["path"] != second["path"]
    for out, size in ((first, 4000), (second, 6000)):
        saved = Path(out["path"].removeprefix("file://"))
        assert saved.read_bytes() == payload(size)
        assert saved.name == f"{out['sha256'][:16]}.mp4"
    # The same video again lands on the same name: kept once, not duplicated, nothing replaced.
    again = _op(source=f"{media.url}/video/output.mp4?size=4000", destination=folder).execute({})
    assert again["path"] == first["path"]
    assert len(_files(tmp_path / "videos")) == 2


def test_object_store_without_exclusive_move_checks_the_bytes_after_it():
    """fsspec's in-memory store has no exclusive move: the name is checked before the move and the
    object re-read after it; bytes that are not this writer's mean it lost a race."""
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    from airflow_provider_kling.hooks._placement import commit

    attach(protocol="memory", fs=MemoryFileSystem())
    final = ObjectStoragePath("memory://race-bucket/clip.mp4")
    final.write_bytes(b"the winner's video")
    tmp = ObjectStoragePath("memory://race-bucket/.clip.mp4.1.part")
    tmp.write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="overwrite=False"):
        commit(tmp, final, overwrite=False, size=4, sha256=hashlib.sha256(b"mine").hexdigest())
    assert final.read_bytes() == b"the winner's video"

    final.unlink()
    # What a writer finds after its move when another one replaced the object in between.
    with pytest.raises(KlingDownloadError, match=r"Another writer replaced .*clip\.mp4"):
        commit(tmp, final, overwrite=False, size=4, sha256=hashlib.sha256(b"theirs").hexdigest())
