"""`ikmo export --format bvh --rig character.bvh`: the motion on the user's skeleton, read back by
an independent reader (bvhio), bone directions compared with the source motion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rig_bodies import FAMILIES, body_bvh

from ikmo.motion_model.errors import RigMappingError
from ikmo.tools.retarget_bvh import write_retargeted_bvh

pytestmark = pytest.mark.integration
bvhio = pytest.importorskip("bvhio")

# (user joint key, its child key) ↔ (motion joint, its child): bones whose directions must agree.
BONES = [(("upper_L", "fore_L"), (16, 18)), (("fore_L", "hand_L"), (18, 20)), (("upper_R", "fore_R"), (17, 19)),
         (("thigh_L", "shin_L"), (1, 4)), (("shin_L", "foot_L"), (4, 7)), (("shin_R", "foot_R"), (5, 8)),
         (("neck", "head"), (12, 15))]
# The pelvis turns its hips and spine together (Kabsch), in the rig's own rest shape: a looser bound.
FAN = (("pelvis", "thigh_L"), (0, 1))


@pytest.fixture(scope="module")
def motion(hml3d_fixture_dir: Path) -> np.ndarray:
    return np.load(hml3d_fixture_dir / "new_joints" / "012314.npy")[:80].astype(np.float64)


@pytest.mark.parametrize(("family", "z_up"), [("mixamo", False), ("character_creator", True), ("unreal", False)])
def test_retargeted_bones_point_like_the_motion(tmp_path: Path, motion: np.ndarray, family: str, z_up: bool) -> None:
    names = FAMILIES[family]
    rig = body_bvh(tmp_path / "rig.bvh", names, z_up=z_up)
    out = tmp_path / "out.bvh"
    write_retargeted_bvh(out, motion, rig)
    root = bvhio.readAsHierarchy(str(out))
    A = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]) if z_up else np.eye(3)  # y up → the file's axes
    worst = fan = 0.0
    for f in range(0, len(motion), 7):
        root.loadPose(f)
        pos = {j.Name: np.array(list(j.PositionWorld)) for j, _, _ in root.layout()}
        for bone, (a, b), (i, k) in [("bone", *x) for x in BONES] + [("fan", *FAN)]:
            got = pos[names[b]] - pos[names[a]]
            want = A @ (motion[f, k] - motion[f, i])
            cos = got @ want / np.linalg.norm(got) / np.linalg.norm(want)
            deg = float(np.degrees(np.arccos(np.clip(cos, -1, 1))))
            worst, fan = (max(worst, deg), fan) if bone == "bone" else (worst, max(fan, deg))
        # the feet stay near the rig's floor (y or z up), the rig keeps its bone lengths
        up = 2 if z_up else 1
        assert min(pos[names["toe_L"]][up], pos[names["toe_R"]][up]) < 10
        assert np.isclose(np.linalg.norm(pos[names["shin_L"]] - pos[names["foot_L"]]), 41, atol=1e-3)
    assert worst < 0.01 and fan < 20, (worst, fan)


def test_unmappable_rig_is_one_clear_error(tmp_path: Path, motion: np.ndarray) -> None:
    few = {k: v for k, v in FAMILIES["mixamo"].items() if not k.startswith("shin")}
    with pytest.raises(RigMappingError, match="rig.bvh.*left_knee"):
        write_retargeted_bvh(tmp_path / "o.bvh", motion, body_bvh(tmp_path / "rig.bvh", few))
