"""Building blocks shared by every Kling request model: limits, defaults, field types, base class.

Limits and defaults are fal's (kling-endpoints.md §2, sources S1/S2: fal-js generated types and
zod schemas generated from fal's OpenAPI); where a rule is Kling's own (upstream API doc, S6/S7)
rather than fal's schema, the comment says so.

Two views share these models (see :mod:`airflow_provider_kling.models.validation`):

* the *client* view (``context={"client": True}``) is what we check before spending money;
  it also normalises friendly input (``duration=5`` becomes ``"5"``);
* the *server* view (no context) is what fal itself answers at result time: strict types,
  unknown fields ignored (fal's pydantic models do not forbid extras).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

MAX_PROMPT_LENGTH = 2500
DEFAULT_NEGATIVE_PROMPT = "blur, distort, and low quality"
DEFAULT_CFG_SCALE = 0.5
DEFAULT_DURATION: Final = "5"
DEFAULT_ASPECT_RATIO: Final = "16:9"

FileKind = Literal["image", "video", "audio", "any"]


def is_client(info: ValidationInfo) -> bool:
    """True when validating for the client (before submit), False for fal's server-side view."""
    return bool(info.context and info.context.get("client"))


def _normalise_duration(value: Any, info: ValidationInfo) -> Any:
    # fal's schema types duration as the *string* "5" | "10" and 422s on a JSON number; users
    # (and Jinja templates) naturally write 5, so the client view turns whole ints into strings.
    if is_client(info) and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# C0 controls except tab/newline/carriage return, DEL, and C1 controls: invisible in the UI and
# the log, never meant, and a NUL truncates the text in some of the C code behind the model.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _check_control_chars(value: Any, info: ValidationInfo) -> Any:
    if is_client(info) and isinstance(value, str):
        found = _CONTROL_CHARS.search(value)
        if found:
            raise PydanticCustomError(
                "control_character",
                f"contains the control character U+{ord(found.group()):04X} at position {found.start()}; "
                "only tab, newline and carriage return are allowed",
            )
    return value


def _check_not_blank(value: Any, info: ValidationInfo) -> Any:
    # fal's schema takes "" and "   " (no min_length), so a blank text is paid for and then
    # generates from nothing (or fails at Kling): the client refuses it.
    if is_client(info) and isinstance(value, str) and not value.strip():
        raise PydanticCustomError("string_blank", "must not be empty or only whitespace")
    return value


def _refuse_bool(value: Any, info: ValidationInfo) -> Any:
    # pydantic (lax, as fal runs it) reads True as 1 and False as 0: cfg_scale=True would
    # silently become the maximum. A bool where a number belongs is a mistake; say so.
    if is_client(info) and isinstance(value, bool):
        raise PydanticCustomError("number_type", "must be a number, not a boolean")
    return value


NoControlChars = AfterValidator(_check_control_chars)
NotBlank = AfterValidator(_check_not_blank)
#: A number field: a bool is refused client-side (see ``_refuse_bool``).
NotBool = BeforeValidator(_refuse_bool)

Duration = Annotated[Literal["5", "10"], BeforeValidator(_normalise_duration)]
AspectRatio = Literal["16:9", "9:16", "1:1"]
# Length first, so pydantic reports it as string_too_long ("at most 2500 characters").
Prompt = Annotated[str, Field(max_length=MAX_PROMPT_LENGTH), NoControlChars, NotBlank]
# A blank negative prompt is a legitimate "avoid nothing"; control characters are still refused.
NegativePrompt = Annotated[str, Field(max_length=MAX_PROMPT_LENGTH), NoControlChars]
CfgScale = Annotated[float, NotBool, Field(ge=0.0, le=1.0)]

_ACCEPTED_SCHEMES = re.compile(r"^(https?://|data:)", re.IGNORECASE)


def _check_url(value: str) -> str:
    # fal's File inputs accept http, https and data URLs only (fal SDK toolkit file.py); anything
    # else fails at fal after the job was queued. Client-side, local files have already been
    # swapped for placeholder URLs by the files module before this runs.
    if not _ACCEPTED_SCHEMES.match(value):
        raise PydanticCustomError(
            "url_scheme",
            "URL should use the http, https or data scheme",
        )
    return value


FileUrl = Annotated[str, AfterValidator(_check_url)]


class KlingInput(BaseModel):
    """Base of every Kling request model: fal's field names, unknown fields rejected.

    ``file_fields`` maps the URL-typed inputs (``"image_url"``, ``"input_image_urls[]"``,
    ``"dynamic_masks[].mask_url"``) to the kind of media they take, so the files module knows
    what to check and upload.
    """

    model_config = ConfigDict(extra="forbid")

    file_fields: ClassVar[dict[str, FileKind]] = {}

    def cross_field_errors(self) -> list[dict[str, Any]]:
        """Rules that span several fields (exclusivity, duration limits). Override per model.

        Returned as ``{"loc": (field,...), "msg": ..., "type": ...}`` so the error names a field
        instead of the whole model.
        """
        return []

    @model_validator(mode="after")
    def _check_cross_fields(self, info: ValidationInfo) -> KlingInput:
        # The validation module asks to defer these so that it can report them with a field
        # ``loc``; anyone calling ``Model.model_validate`` directly still gets them enforced.
        if info.context and info.context.get("defer_cross_checks"):
            return self
        errors = self.cross_field_errors()
        if errors:
            raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        return self


def cross_error(loc: tuple[str | int, ...], msg: str, type_: str = "value_error") -> dict[str, Any]:
    """One cross-field error in the shape the validation module reports."""
    return {"loc": loc, "msg": msg, "type": type_}
