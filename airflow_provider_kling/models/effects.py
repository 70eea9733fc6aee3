"""Video effects: a named scene ("hug", "squish", ...) applied to one or two photos.

fal's ``effect_scene`` enum grew from 8 values (2025-07) to 198 (2026-08) and keeps growing, so
it is typed as an open string here: known values are listed, an unknown one is refused (with a
"did you mean" for a near-miss such as ``sqiush``) unless the caller opts in with
``allow_unknown_effect_scene=True`` (then it only logs a warning), and the number of input images
is checked where we know the scene.
"""

from __future__ import annotations

import difflib
import logging
from typing import Any, ClassVar

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from airflow_provider_kling.models.common import (
    DEFAULT_DURATION,
    Duration,
    FileKind,
    FileUrl,
    KlingInput,
    cross_error,
    is_client,
)

log = logging.getLogger(__name__)


def _words(text: str) -> list[str]:
    # Scene names as whitespace-separated words: 270 quoted strings would bury the list.
    return text.split()


# Scenes that combine two people, so they need exactly two photos. hug/kiss/heart_gesture are
# fal's own ("for hug, kiss or heart_gesture", S1); the *_pro and other pairs come from a
# third-party catalogue of Kling's effect templates (2026) [T].
DUAL_IMAGE_EFFECT_SCENES: frozenset[str] = frozenset(
    {
        "hug",
        "kiss",
        "heart_gesture",
        "pet_skateboard",
        "daily_ootd",
        "toss_run",
        "switch_to_silk",
        "studio_look",
        "french_elegance",
        "finger_swipe",
        "smooth_transition",
        "kiss_pro",
        "snow_night_kiss",
        "eternal_kiss",
        "cheers_2026",
        "fight_pro",
        "hug_pro",
        "heart_gesture_pro",
    }
)

# fal's first single-person scenes (2025-07 → 2025-10, S1); they take exactly one photo (S14).
SINGLE_IMAGE_EFFECT_SCENES: frozenset[str] = frozenset(
    _words(
        """
    squish expansion fuzzyfuzzy bloombloom dizzydizzy jelly_press jelly_slice jelly_squish jelly_jiggle
    pixelpixel yearbook instant_film anime_figure rocketrocket
    """
    )
)

# Kling's template catalogue as mirrored by a third-party client in 2026 [T]; fal's 2026-08 list
# has 198 values and adds some monthly. How many photos each takes is not known: 1 or 2.
_CATALOGUE_SCENES = _words(
    """
korean_baseball tiny_beast_printer
landmark_reveal winter_charm flash_ride maestro_of_magic magic_carpet_ride good_luck_spirit shooting_star
sparkler_wand sovereign_scepter dirt_rush return_of_the_king dance_with_dragon minimalist_light martial_meow
sassy_shake knock_at_a_door_revenge palm_sized_figure_pro prank_box perler_beads spring_bloom get_rich_quick
make_it_rain twist_shake the_hip_sway send_my_love funky_martian wealth_drive the_high_kick the_exercise
lucky_veggie flash_drive shush_my_dreams advent_of_flora raid_check fortune_in_motion chinese_trend
sedan_chair_dance skyfall good_luck_dance laicai_dance yangge_dance color_mixing palm_sized_figure
lantern_festival_cuju unique_firework unique_spring_couplets horse_mask fortune_knocks_cartoon
tangyuan_to_animal hot_feet_dance swag_dance pigeon_dance bloodline_dance chanel_dance cute_dance
love_theme_song pumpitup_dance city_to_village fortune_god_transform new_year_feast ring_in_new
horse_year_firework pet_vlogger crystal_horse lateral_shift_transition drunk_dance drunk_dance_pet
daoma_dance bouncy_dance smooth_sailing_dance new_year_greeting lion_dance prosperity great_success
golden_horse_fortune red_packet_box lucky_horse_year lucky_red_packet lucky_money_come lion_dance_pet
dumpling_making_pet fish_making_pet pet_red_packet lantern_glow expression_challenge overdrive
heart_gesture_dance poping martial_arts running nezha motorcycle_dance subject_3_dance ghost_step_dance
phantom_jewel zoom_out dollar_rain_pro pet_bee_pro countdown_teleport santa_random_surprise
magic_match_tree bullet_time_360 happy_birthday birthday_star thumbs_up_pro tiger_hug_pro pet_lion_pro
surprise_bouquet bouquet_drop 3d_cartoon_1_pro firework_2026 glamour_photo_shoot box_of_joy
first_toast_of_the_year my_santa_pic santa_gift steampunk_christmas snowglobe christmas_photo_shoot
ornament_crash santa_express instant_christmas particle_santa_surround coronation_of_frost
building_sweater spark_in_the_snow scarlet_and_snow cozy_toon_wrap bullet_time_lite magic_cloak
balloon_parade jumping_ginger_joy bullet_time c4d_cartoon_pro pure_white_wings black_wings golden_wing
pink_pink_wings venomous_spider throne_of_king luminous_elf woodland_elf japanese_anime_1 american_comics
guardian_spirit swish_swish snowboarding witch_transform vampire_transform pumpkin_head_transform
demon_transform mummy_transform zombie_transform cute_pumpkin_transform cute_ghost_transform
knock_knock_halloween halloween_escape baseball inner_voice a_list_look memory_alive trampoline
trampoline_night pucker_up guess_what feed_mooncake rampage_ape flyer dishwasher pet_chinese_opera
magic_fireball gallery_ring pet_moto_rider muscle_pet squeeze_scream pet_delivery running_man disappear
mythic_style steampunk 3d_cartoon_2 eagle_snatch hug_from_past firework media_interview pet_chef
santa_gifts santa_hug heart_gesture_1 pet_wizard smoke_smoke instant_kid dollar_rain cry_cry
building_collapse gun_shot mushroom double_gun pet_warrior lightning_power jesus_hug shark_alert long_hair
lie_flat polar_bear_hug brown_bear_hug jazz_jazz office_escape_plow fly_fly watermelon_bomb pet_dance
boss_coming wool_curly pet_bee marry_me swing_swing day_to_night piggy_morph wig_out car_explosion ski_ski
siblings construction_worker let's_ride snatched magic_broom felt_felt jumpdrop surfsurf fairy_wing
angel_wing dark_wing skateskate plushcut emoji tennis_trend whirling_beverage f1_live football_live
spielberg_transition
"""
)

KNOWN_EFFECT_SCENES: frozenset[str] = (
    frozenset(_CATALOGUE_SCENES) | SINGLE_IMAGE_EFFECT_SCENES | DUAL_IMAGE_EFFECT_SCENES
)


class VideoEffectsInput(KlingInput):
    """An effect scene applied to one photo (single-person scenes) or two (``hug``, ``kiss``, ...).

    :param effect_scene: scene name; an open string (see :data:`KNOWN_EFFECT_SCENES`), unknown
        names are sent as they are, with a warning.
    :param input_image_urls: the photos: 2 for :data:`DUAL_IMAGE_EFFECT_SCENES`, 1 for
        :data:`SINGLE_IMAGE_EFFECT_SCENES`, 1 or 2 for every other scene.
    :param duration: ``"5"`` or ``"10"`` seconds.
    """

    file_fields: ClassVar[dict[str, FileKind]] = {"input_image_urls[]": "image"}

    effect_scene: str = Field(min_length=1)
    input_image_urls: list[FileUrl] | None = Field(default=None, max_length=2)
    duration: Duration = DEFAULT_DURATION

    @field_validator("effect_scene")
    @classmethod
    def _check_unknown_scene(cls, value: str, info: ValidationInfo) -> str:
        # A typo fails only after the job was queued (and may be billed): refused unless the
        # caller opted in for a scene fal added after this release.
        if not is_client(info) or value in KNOWN_EFFECT_SCENES:
            return value
        close = difflib.get_close_matches(value, sorted(KNOWN_EFFECT_SCENES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        if (info.context or {}).get("allow_unknown_effect_scene"):
            log.warning(
                "effect_scene %r is not one of the %d scenes known to this provider%s; sending it as is "
                "(allow_unknown_effect_scene=True).",
                value,
                len(KNOWN_EFFECT_SCENES),
                hint,
            )
            return value
        raise PydanticCustomError(
            "effect_scene_unknown",
            f"is not one of the {len(KNOWN_EFFECT_SCENES)} scenes known to this provider{hint} "
            "(for a scene fal added since, pass allow_unknown_effect_scene=True)",
        )

    def cross_field_errors(self) -> list[dict[str, Any]]:
        count = len(self.input_image_urls or [])
        if self.effect_scene in DUAL_IMAGE_EFFECT_SCENES:
            expected, wanted = (2, 2), "exactly 2 images"
        elif self.effect_scene in SINGLE_IMAGE_EFFECT_SCENES:
            expected, wanted = (1, 1), "exactly 1 image"
        else:
            expected, wanted = (1, 2), "1 or 2 images"
        if not expected[0] <= count <= expected[1]:
            return [
                cross_error(
                    ("input_image_urls",),
                    f"effect_scene {self.effect_scene!r} needs {wanted} (got {count})",
                )
            ]
        return []
