"""Lip-sync request models: make a person in a video speak a text or an audio track."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from airflow_provider_kling.models.common import (
    FileKind,
    FileUrl,
    KlingInput,
    NoControlChars,
    NotBlank,
    NotBool,
)

MAX_LIPSYNC_TEXT_LENGTH = 120

# fal's voice_id enum, stable at 46 values across every snapshot 2024-12 → 2026-08 (S1).
VOICE_IDS: tuple[str, ...] = (
    "genshin_vindi2",
    "zhinen_xuesheng",
    "AOT",
    "ai_shatang",
    "genshin_klee2",
    "genshin_kirara",
    "ai_kaiya",
    "oversea_male1",
    "ai_chenjiahao_712",
    "girlfriend_4_speech02",
    "chat1_female_new-3",
    "chat_0407_5-1",
    "cartoon-boy-07",
    "uk_boy1",
    "cartoon-girl-01",
    "PeppaPig_platform",
    "ai_huangzhong_712",
    "ai_huangyaoshi_712",
    "ai_laoguowang_712",
    "chengshu_jiejie",
    "you_pingjing",
    "calm_story1",
    "uk_man2",
    "laopopo_speech02",
    "heainainai_speech02",
    "reader_en_m-v1",
    "commercial_lady_en_f-v1",
    "tiyuxi_xuedi",
    "tiexin_nanyou",
    "girlfriend_1_speech02",
    "girlfriend_2_speech02",
    "zhuxi_speech02",
    "uk_oldman3",
    "dongbeilaotie_speech02",
    "chongqingxiaohuo_speech02",
    "chuanmeizi_speech02",
    "chaoshandashu_speech02",
    "ai_taiwan_man2_speech02",
    "xianzhanggui_speech02",
    "tianjinjiejie_speech02",
    "diyinnansang_DB_CN_M_04-v2",
    "yizhipiannan-v1",
    "guanxiaofang-v2",
    "tianmeixuemei-v1",
    "daopianyansang-v1",
    "mengwa-v1",
)

VoiceId = Literal[VOICE_IDS]  # type: ignore[valid-type]


class LipsyncTextToVideoInput(KlingInput):
    """Lip-sync a video to synthesised speech.

    :param video_url: the video with a visible face (mp4/mov, ≤ 100 MB, 720p or 1080p).
    :param text: what to say, at most 120 characters.
    :param voice_id: one of the 46 ids in :data:`VOICE_IDS`.
    :param voice_language: ``"en"`` (default) or ``"zh"``.
    :param voice_speed: 0.8-2.0 (default 1.0).
    """

    file_fields: ClassVar[dict[str, FileKind]] = {"video_url": "video"}

    video_url: FileUrl
    text: Annotated[str, Field(min_length=1, max_length=MAX_LIPSYNC_TEXT_LENGTH), NoControlChars, NotBlank]
    voice_id: VoiceId
    voice_language: Literal["zh", "en"] = "en"
    voice_speed: Annotated[float, NotBool] = Field(default=1.0, ge=0.8, le=2.0)


class LipsyncAudioToVideoInput(KlingInput):
    """Lip-sync a video to an audio track.

    :param video_url: the video with a visible face (mp4/mov, ≤ 100 MB, 2-10 s, 720p or 1080p).
    :param audio_url: the speech (2-60 s, ≤ 5 MB).
    """

    file_fields: ClassVar[dict[str, FileKind]] = {"video_url": "video", "audio_url": "audio"}

    video_url: FileUrl
    audio_url: FileUrl
