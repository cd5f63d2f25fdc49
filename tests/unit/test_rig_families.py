"""Rigs of each naming family, written here as small BVH files, map onto the 22 joints at their
known positions (names where they tell, the skeleton where they do not)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rig_bodies import FAMILIES, FAMILY_NAMES, GUESSED, body_bvh, expected_cm

from ikmo.motion_model.data.bvh import bvh_rest_positions, read_bvh
from ikmo.motion_model.data.rig_match import Along, is_ignored
from ikmo.motion_model.data.rigs import bvh_to_joints, resolve_rig
from ikmo.motion_model.representation.skeleton import HUMANML3D_22

pytestmark = pytest.mark.unit

@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_maps_onto_known_positions(tmp_path: Path, family: str) -> None:
    path = body_bvh(tmp_path / f"{family}.bvh", FAMILIES[family])
    joints, info = bvh_to_joints(str(path))
    assert info["unit"] == "cm" and info["family"] == FAMILY_NAMES[family]
    assert set(info["guessed"]) == GUESSED.get(family, set())
    names = HUMANML3D_22.joint_names
    checked = 0
    for target in names:
        want = expected_cm(family, target)
        if want is None:
            continue
        np.testing.assert_allclose(joints[0, names.index(target)], want / 100, atol=1e-6, err_msg=target)
        checked += 1
    assert checked >= 17
    # spine1..3 lie on the pelvis→neck chain, in order, between the two
    y = joints[0, [0, 3, 6, 9, 12], 1]
    assert np.all(np.diff(y) > 0)


def test_twist_finger_face_bones_are_ignored() -> None:
    for n in ("CC_Base_L_UpperarmTwist01", "upperarm_twist_01_l", "LeftArmRoll", "CC_Base_L_ToeBaseShareBone",
              "mixamorig:LeftHandIndex1", "Bip01 L Finger0", "CC_Base_JawRoot", "eye.L", "thumb.01.R",
              "Bip01 HeadNub", "ik_foot_root", "mixamorig:HeadTop_End", "pelvis.L", "heel.02.L"):
        assert is_ignored(n), n
    for n in ("CC_Base_L_Upperarm", "thigh_l", "LeftUpLeg", "Bip01 L Toe0", "DEF-thigh.L", "spine.004"):
        assert not is_ignored(n), n


def test_z_up_unnamed_rig_is_found_and_turned_y_up(tmp_path: Path) -> None:
    ref, _ = bvh_to_joints(str(body_bvh(tmp_path / "y.bvh", FAMILIES["unnamed"])))
    zup, info = bvh_to_joints(str(body_bvh(tmp_path / "z.bvh", FAMILIES["unnamed"], z_up=True)))
    np.testing.assert_allclose(zup, ref, atol=1e-9)
    assert len(info["guessed"]) == 19


def test_spine_is_along_the_rigs_own_chain(tmp_path: Path) -> None:
    m = read_bvh(body_bvh(tmp_path / "cc.bvh", FAMILIES["character_creator"]))
    names = m.names + m.end_site_names
    rig = resolve_rig(names, list(m.parents) + [p for p, _ in m.end_sites], rest=bvh_rest_positions(m),
                      n_joints=m.n_joints)
    spine = rig.targets[HUMANML3D_22.joint_names.index("spine2")]
    assert isinstance(spine, Along)
    assert spine.chain == ("CC_Base_Hip", "CC_Base_Waist", "CC_Base_Spine01", "CC_Base_Spine02",
                           "CC_Base_NeckTwist01")
