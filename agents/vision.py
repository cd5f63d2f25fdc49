"""What a vision-capable provider is shown, and the keyframe fit check.

- `image_part` / `vision_content`: the one place that turns images into message content (OpenAI-style
  `text` + `image_url` parts with base64 data URLs, which langchain also converts for Anthropic and
  Ollama). The critic's contact sheet and the keyframe check's photo + overlay both go through it.
- `PoseFitCheck`: the verdict on one photo's fitted pose, the schema of prompt `keyframe_check_v1`.
- `offline_fit_check`: the deterministic check every provider gets, from what the pose tools
  measured themselves: landmark visibility, the fit's residual to its targets, the number of people.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ikmo.motion_model.constraints import KeyframePose
from ikmo.tools.toolbox import PhotoReading

if TYPE_CHECKING:  # PIL loads only when an image is actually read
    from PIL.Image import Image

# A vision model reads images at most ~768 px on the short side (OpenAI's "high" detail tiles):
# larger photos only cost upload time.
MAX_IMAGE_SIDE = 768

# BlazePose landmarks of the limbs and torso (shoulders, elbows, wrists, hips, knees, ankles).
BODY_LANDMARKS = (11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
# Below this mean visibility most of the body is guessed, not seen (BlazePose's own bar for one
# landmark, `tools.smpl_fit.MIN_VISIBILITY`).
MIN_BODY_VISIBILITY = 0.5
# The fit's RMS distance to its landmark targets: ~0.01 m on clean photos (8 and 13 mm for the
# bench's two mannequin photos). Far above it the skeleton cannot take the landmarks' shape:
# scrambled or mixed-up landmarks.
MAX_FIT_RMS_M = 0.05
# Fewer seen joints than this constrain only part of the body (worth telling, not a failure).
MIN_SEEN_JOINTS = 12

Problem = Literal["none", "left_right_flip", "wrong_person", "not_a_person", "other"]


def image_part(image: Image, fmt: Literal["PNG", "JPEG"] = "PNG", max_side: int | None = None) -> dict[str, Any]:
    """An `image_url` content part holding `image` as a base64 data URL.

    fmt: PNG for renders (sharp lines), JPEG for photos (5-10x smaller); max_side: downscale so
    the long side is at most this many pixels (None: as is).
    """
    img = image.convert("RGB")
    if max_side is not None and max(img.size) > max_side:
        s = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))))
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    url = f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()
    return {"type": "image_url", "image_url": {"url": url}}


def vision_content(text: str, images: Sequence[Image | dict[str, Any]]) -> list[dict[str, Any]]:
    """A user message's content: `text`, then the images (PIL images as PNG, or ready `image_part`s)."""
    return [{"type": "text", "text": text}, *(im if isinstance(im, dict) else image_part(im) for im in images)]


class PoseFitCheck(BaseModel):
    """A verdict on one photo's fitted pose: does the fitted skeleton show the person's pose?"""

    model_config = ConfigDict(extra="forbid")
    ok: bool = Field(description="true when the fit shows the person's pose")
    problem: Problem = Field(description='"none" when ok, else what is wrong')
    note: str = Field(default="", max_length=500, description="one short sentence: what was seen")

    @model_validator(mode="after")
    def _ok_means_no_problem(self) -> PoseFitCheck:
        if self.ok != (self.problem == "none"):
            raise ValueError('ok must be true exactly when problem is "none"')
        return self


def offline_fit_check(kf: KeyframePose, reading: PhotoReading | None = None) -> PoseFitCheck:
    """The pose tools' own evidence about a fit (deterministic, no provider).

    With the tools' reading of the photo (`PhotoReading`): mean visibility of the body landmarks, the fit's
    RMS residual, how many people were found; with a keyframe alone: the mean confidence of its
    seen joints. Flags (ok False, problem "other") a body mostly not seen or a fit that cannot
    match its landmarks; notes partial bodies and several people.
    """
    mask = np.asarray(kf.joint_mask, bool)
    seen = int(mask.sum())
    flags: list[str] = []
    facts: list[str] = []
    if reading is not None:
        vis = float(np.clip(reading.landmarks.visibility[list(BODY_LANDMARKS)], 0, 1).mean())
        facts.append(f"body landmark visibility {vis:.2f}")
        rms = float(reading.fit.error_m)
        facts.append(f"fit rms {rms * 1000:.0f} mm")
        if rms > MAX_FIT_RMS_M:
            flags.append(f"the fitted skeleton stays {rms * 1000:.0f} mm (rms) from the landmarks "
                         f"(> {MAX_FIT_RMS_M * 1000:.0f}): the detection may be scrambled")
        people = int(reading.landmarks.n_people)
        if people > 1:
            facts.append(f"{people} people in the photo, the largest used: check it is the intended one")
    else:
        vis = float(np.asarray(kf.confidence)[mask].mean())
        facts.append(f"mean joint confidence {vis:.2f}")
    if vis < MIN_BODY_VISIBILITY:
        flags.insert(0, f"the body is hard to see ({facts[0]} < {MIN_BODY_VISIBILITY}): the pose is partly guessed")
    facts.append(f"{seen} of {len(mask)} joints seen")
    if seen < MIN_SEEN_JOINTS:
        facts.append("the other joints are left free")
    note = "; ".join(flags + facts)[:500]
    return PoseFitCheck(ok=not flags, problem="other" if flags else "none", note=note)
