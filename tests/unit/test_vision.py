"""agents/vision.py: the image parts of a message, the fit check's schema and the offline fit check."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from ikmo.agents.vision import (
    MIN_BODY_VISIBILITY,
    PoseFitCheck,
    image_part,
    offline_fit_check,
    vision_content,
)
from ikmo.motion_model.constraints import KeyframePose
from ikmo.motion_model.representation.skeleton import HUMANML3D_22

pytestmark = pytest.mark.unit


def _decode(part: dict) -> Image.Image:
    url = part["image_url"]["url"]
    head, data = url.split(",", 1)
    assert part["type"] == "image_url" and head.endswith(";base64")
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_image_parts_are_data_urls_downscaled_on_request() -> None:
    img = Image.new("RGB", (1600, 900), (10, 200, 30))
    png = image_part(img)
    assert png["image_url"]["url"].startswith("data:image/png;base64,") and _decode(png).size == (1600, 900)
    jpeg = image_part(img, "JPEG", max_side=768)
    assert jpeg["image_url"]["url"].startswith("data:image/jpeg;base64,") and _decode(jpeg).size == (768, 432)
    content = vision_content("look", [img, jpeg])
    assert content[0] == {"type": "text", "text": "look"} and content[2] is jpeg and len(content) == 3


def test_pose_fit_check_needs_ok_to_match_the_problem() -> None:
    assert PoseFitCheck(ok=False, problem="left_right_flip", note="arms swapped").problem == "left_right_flip"
    with pytest.raises(ValidationError, match="ok must be true exactly when"):
        PoseFitCheck(ok=True, problem="left_right_flip")
    with pytest.raises(ValidationError, match="ok must be true exactly when"):
        PoseFitCheck(ok=False, problem="none")
    with pytest.raises(ValidationError):
        PoseFitCheck.model_validate({"ok": False, "problem": "mirrored"})  # not one of the problems
    assert "left_right_flip" in str(PoseFitCheck.model_json_schema())  # what the prompt's schema lists


def _keyframe(confidence: float, seen: int = 22) -> KeyframePose:
    off = HUMANML3D_22.offsets()
    j = np.zeros((22, 3))
    for i, p in enumerate(HUMANML3D_22.parents):
        if p >= 0:
            j[i] = j[p] + off[i]
    mask = [i < seen for i in range(22)]
    return KeyframePose(time_s=0.0, joints=j.tolist(), joint_mask=mask, confidence=[confidence] * 22)


def test_offline_check_of_a_bare_keyframe_uses_joint_confidence() -> None:
    ok = offline_fit_check(_keyframe(0.9))
    assert ok.ok and ok.problem == "none" and "22 of 22 joints seen" in ok.note
    dim = offline_fit_check(_keyframe(MIN_BODY_VISIBILITY - 0.1))
    assert not dim.ok and dim.problem == "other" and "hard to see" in dim.note
    partial = offline_fit_check(_keyframe(0.9, seen=10))
    assert partial.ok and "10 of 22 joints seen; the other joints are left free" in partial.note
