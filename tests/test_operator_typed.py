"""Typed Kling operators: readable keywords → the right endpoint id and fal field names."""

from __future__ import annotations

import warnings

import pytest

from airflow_provider_kling.exceptions import KlingConfigurationError
from airflow_provider_kling.operators.kling import (
    KlingImageToVideoOperator,
    KlingLipSyncOperator,
    KlingTextToVideoOperator,
    KlingVideoEffectsOperator,
    KlingVideoOperator,
)
from tests.test_operator_kling import DictStateStore, RecordingTI

IMG = "https://example.com/first.png"
TAIL = "https://example.com/last.png"
VIDEO = "https://example.com/face.mp4"


def test_image_to_video_defaults_to_v16_standard():
    op = KlingImageToVideoOperator(task_id="i2v", prompt="p", image=IMG)
    assert op.build_request() == (
        "fal-ai/kling-video/v1.6/standard/image-to-video",
        {"prompt": "p", "image_url": IMG},
    )


def test_image_to_video_v26_uses_start_and_end_image_fields():
    op = KlingImageToVideoOperator(
        task_id="i2v", prompt="p", image=IMG, tail_image=TAIL, model="v2.6", tier="pro"
    )
    endpoint, arguments = op.build_request()
    assert endpoint == "fal-ai/kling-video/v2.6/pro/image-to-video"
    assert arguments == {"prompt": "p", "start_image_url": IMG, "end_image_url": TAIL}


def test_image_to_video_pro_tail_frame_and_options():
    op = KlingImageToVideoOperator(
        task_id="i2v",
        prompt="p",
        image=IMG,
        tail_image=TAIL,
        model="1.6",
        tier="PRO",
        duration=10,
        aspect_ratio="9:16",
        cfg_scale=0.7,
        negative_prompt="blur",
    )
    endpoint, arguments = op.build_request()
    assert endpoint == "fal-ai/kling-video/v1.6/pro/image-to-video"
    assert arguments == {
        "prompt": "p",
        "image_url": IMG,
        "tail_image_url": TAIL,
        "duration": 10,
        "aspect_ratio": "9:16",
        "negative_prompt": "blur",
        "cfg_scale": 0.7,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "v2.6", "tier": "standard"}, "model='v2.6', tier='standard'; available (model/tier): "),
        ({"model": "v9", "tier": "pro"}, "v1.6/pro"),
        (
            {"tail_image": TAIL},
            "tail_image is not accepted by fal-ai/kling-video/v1.6/standard/image-to-video",
        ),
        ({"aspect_ratio": "1:1"}, "aspect_ratio is not accepted"),
        ({"model": "v2.6", "tier": "pro", "cfg_scale": 0.5}, "cfg_scale is not accepted"),
        ({"extra_arguments": {"prompt": "again"}}, "extra_arguments repeats fields"),
    ],
)
def test_impossible_image_to_video_combinations_fail_at_construction(kwargs, message):
    with pytest.raises(KlingConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        KlingImageToVideoOperator(task_id="i2v", prompt="p", image=IMG, **kwargs)


def test_templated_model_is_checked_at_execute_before_any_network_call(emulator, fal_conn):
    op = KlingImageToVideoOperator(
        task_id="i2v", prompt="p", image=IMG, model="{{ params.model }}", tier="pro"
    )
    op.model = "v2"  # what Jinja renders
    with pytest.raises(
        KlingConfigurationError, match="no Kling image-to-video endpoint for model='v2', tier='pro'"
    ):
        op.execute({"ti": RecordingTI(), "task_state_store": DictStateStore()})
    assert sum(emulator.requests.values()) == 0


def test_text_to_video_with_camera_control():
    op = KlingTextToVideoOperator(
        task_id="t2v",
        prompt="p",
        model="v1",
        tier="standard",
        advanced_camera_control={"movement_type": "pan", "movement_value": 5},
    )
    assert op.build_request() == (
        "fal-ai/kling-video/v1/standard/text-to-video",
        {"prompt": "p", "advanced_camera_control": {"movement_type": "pan", "movement_value": 5}},
    )
    with pytest.raises(KlingConfigurationError, match=r"camera_control is not accepted .* v1/standard"):
        KlingTextToVideoOperator(task_id="t2v", prompt="p", camera_control="down_back")


def test_text_to_video_has_no_v25_turbo_standard():
    with pytest.raises(KlingConfigurationError, match="available"):
        KlingTextToVideoOperator(task_id="t2v", prompt="p", model="v2.5-turbo", tier="standard")


def test_lipsync_picks_the_endpoint_from_audio_or_text():
    audio = KlingLipSyncOperator(task_id="ls", video=VIDEO, audio="https://example.com/a.mp3")
    assert audio.build_request() == (
        "fal-ai/kling-video/lipsync/audio-to-video",
        {"video_url": VIDEO, "audio_url": "https://example.com/a.mp3"},
    )
    text = KlingLipSyncOperator(task_id="ls", video=VIDEO, text="hello", voice_id="uk_man2", voice_speed=1.2)
    assert text.build_request() == (
        "fal-ai/kling-video/lipsync/text-to-video",
        {"video_url": VIDEO, "text": "hello", "voice_id": "uk_man2", "voice_speed": 1.2},
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of audio"),
        ({"audio": "a.mp3", "text": "hi", "voice_id": "uk_man2"}, "exactly one of audio"),
        ({"text": "hi"}, "voice_id is required"),
        ({"audio": "a.mp3", "voice_id": "uk_man2"}, "voice_id only apply to text lip-sync"),
    ],
)
def test_lipsync_rejects_ambiguous_input(kwargs, message):
    with pytest.raises(KlingConfigurationError, match=message):
        KlingLipSyncOperator(task_id="ls", video=VIDEO, **kwargs)


def test_effects_endpoint_and_image_list():
    op = KlingVideoEffectsOperator(
        task_id="fx", effect_scene="hug", images=[IMG, TAIL], model="v1.6", tier="pro"
    )
    assert op.build_request() == (
        "fal-ai/kling-video/v1.6/pro/effects",
        {"effect_scene": "hug", "input_image_urls": [IMG, TAIL]},
    )
    single = KlingVideoEffectsOperator(
        task_id="fx", effect_scene="squish", images=IMG, model="v1", tier="standard"
    )
    assert single.build_request()[1]["input_image_urls"] == [IMG]
    with pytest.raises(KlingConfigurationError, match=r"v1\.5/pro"):
        KlingVideoEffectsOperator(task_id="fx", effect_scene="hug", images=IMG, model="v1.5", tier="standard")


def test_typed_operator_runs_end_to_end(emulator, fal_conn):
    op = KlingImageToVideoOperator(
        task_id="i2v",
        prompt="p",
        image="https://example.com/not-fetched-by-the-emulator.png",
        model="v2.1",
        tier="standard",
        poll_interval=0.05,
        deferrable=False,
    )
    output = op.execute({"ti": RecordingTI(), "task_state_store": DictStateStore()})
    assert output["endpoint_id"] == "fal-ai/kling-video/v2.1/standard/image-to-video"
    assert output["video_url"] and output["cost_estimate"] == "0.280"
    assert emulator.submissions["fal-ai/kling-video/v2.1/standard/image-to-video"] == 1


def test_generic_operator_validates_its_options():
    with pytest.raises(KlingConfigurationError, match="poll_interval must be a number > 0"):
        KlingVideoOperator(task_id="v", endpoint_id="fal-ai/x/y", poll_interval=0)
    with pytest.raises(KlingConfigurationError, match="priority must be 'normal' or 'low'"):
        KlingVideoOperator(task_id="v", endpoint_id="fal-ai/x/y", priority="high")
    with pytest.raises(KlingConfigurationError, match="start_timeout must be more than 1 second"):
        KlingVideoOperator(task_id="v", endpoint_id="fal-ai/x/y", start_timeout=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        KlingVideoOperator(task_id="v", endpoint_id="fal-ai/x/y", wait_for_completion=False, deferrable=True)
    assert any("deferrable has no effect" in str(w.message) for w in caught)


def test_typed_operators_refuse_an_endpoint_id_they_would_ignore():
    with pytest.raises(KlingConfigurationError, match="endpoint_id"):
        KlingTextToVideoOperator(
            task_id="t2v", prompt="p", endpoint_id="fal-ai/kling-video/v2/master/text-to-video"
        )
    with pytest.raises(KlingConfigurationError, match="arguments"):
        KlingTextToVideoOperator(task_id="t2v", prompt="p", arguments={"aspect_ratio": "1:1"})


def test_typed_module_imported_first_still_re_exports(tmp_path):
    # The typed operators live in a sibling module of the generic one; kling.py only re-exports
    # both, so either can be imported first and neither imports kling.py (no cycle).
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import airflow_provider_kling.operators._typed as typed\n"
        "assert 'airflow_provider_kling.operators.kling' not in sys.modules\n"
        "from airflow_provider_kling.operators.kling import *\n"
        "from airflow_provider_kling.operators.kling import KlingLipSyncOperator\n"
        "assert KlingLipSyncOperator is typed.KlingLipSyncOperator\n"
        "assert KlingTextToVideoOperator.__mro__[2] is KlingVideoOperator\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
