"""Rig mapping onto the 22 joints, units, up axis, resampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ikmo.motion_model.data.rigs import (
    RIGS,
    Along,
    RigMap,
    bvh_to_joints,
    guess_unit,
    name_based_map,
    resample,
    resolve_rig,
    split_side,
    to_metres_y_up,
    up_rotation,
)
from ikmo.motion_model.errors import MotionDataError, RigMappingError
from ikmo.motion_model.representation.skeleton import HUMANML3D_22

pytestmark = pytest.mark.unit

# A Mixamo-like T-pose in centimetres, y up, facing +Z, left = +X: (name, parent, offset).
MIXAMO = [
    ("Hips", None, (0, 100, 0)),
    ("Spine", "Hips", (0, 10, 0)), ("Spine1", "Spine", (0, 12, 0)), ("Spine2", "Spine1", (0, 14, 0)),
    ("Neck", "Spine2", (0, 16, 0)), ("Head", "Neck", (0, 10, 0)),
    ("LeftShoulder", "Spine2", (6, 12, 0)), ("LeftArm", "LeftShoulder", (12, 0, 0)),
    ("LeftForeArm", "LeftArm", (26, 0, 0)), ("LeftHand", "LeftForeArm", (25, 0, 0)),
    ("RightShoulder", "Spine2", (-6, 12, 0)), ("RightArm", "RightShoulder", (-12, 0, 0)),
    ("RightForeArm", "RightArm", (-26, 0, 0)), ("RightHand", "RightForeArm", (-25, 0, 0)),
    ("LeftUpLeg", "Hips", (9, -6, 0)), ("LeftLeg", "LeftUpLeg", (0, -42, 0)),
    ("LeftFoot", "LeftLeg", (0, -42, 0)), ("LeftToeBase", "LeftFoot", (0, -8, 12)),
    ("RightUpLeg", "Hips", (-9, -6, 0)), ("RightLeg", "RightUpLeg", (0, -42, 0)),
    ("RightFoot", "RightLeg", (0, -42, 0)), ("RightToeBase", "RightFoot", (0, -8, 12)),
]  # fmt: skip


def write_bvh(path: Path, joints: list, prefix: str = "", frames: int = 31, frame_time: float = 1 / 30,
              z_up: bool = False) -> Path:
    """A BVH of `joints` (T-pose, root walking +Z at 1 unit per frame), 6 channels on the root."""
    children: dict[str | None, list] = {}
    for j in joints:
        children.setdefault(j[1], []).append(j)

    def off(o: tuple) -> str:
        x, y, z = o
        return f"{x} {-z} {y}" if z_up else f"{x} {y} {z}"  # z up: (x, y, z) -> (x, -z, y)

    def emit(j: tuple, depth: int) -> list[str]:
        ind = "  " * depth
        kind = "ROOT" if j[1] is None else "JOINT"
        ch = "6 Xposition Yposition Zposition Zrotation Xrotation Yrotation" if j[1] is None else \
            "3 Zrotation Xrotation Yrotation"
        out = [f"{ind}{kind} {prefix}{j[0]}", f"{ind}{{", f"{ind}  OFFSET {off(j[2])}", f"{ind}  CHANNELS {ch}"]
        kids = children.get(j[0], [])
        for k in kids:
            out += emit(k, depth + 1)
        if not kids:
            out += [f"{ind}  End Site", f"{ind}  {{", f"{ind}    OFFSET 0 0 5", f"{ind}  }}"]
        out.append(f"{ind}}}")
        return out

    lines = ["HIERARCHY", *emit(children[None][0], 0), "MOTION", f"Frames: {frames}", f"Frame Time: {frame_time}"]
    n_ch = 6 + 3 * (len(joints) - 1)
    root = joints[0][2]
    for t in range(frames):
        pos = off((root[0], root[1], root[2] + t))
        lines.append(pos + " " + " ".join(["0"] * (n_ch - 3)))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mixamorig:LeftUpLeg", ("left", "upleg")),
        ("RightHand", ("right", "hand")),
        ("thigh.L", ("left", "thigh")),
        ("lThigh", ("left", "thigh")),
        ("rForeArm", ("right", "forearm")),
        ("L_Hip", ("left", "hip")),
        ("Hand_R", ("right", "hand")),
        ("Spine1", (None, "spine1")),
        ("hip", (None, "hip")),
        ("Bip01 L Foot", ("left", "foot")),
    ],
)
def test_split_side(name: str, expected: tuple) -> None:
    assert split_side(name) == expected


def test_mixamo_names_import(tmp_path: Path) -> None:
    p = write_bvh(tmp_path / "mixamo.bvh", MIXAMO, prefix="mixamorig:")
    joints, info = bvh_to_joints(str(p))
    assert info["rig"] == "name_based" and info["unit"] == "cm" and info["src_fps"] == 30.0
    assert joints.shape == (21, 22, 3)  # 1 s at 30 fps → 1 s at 20 fps
    j0 = joints[0]
    names = HUMANML3D_22.joint_names
    assert j0[names.index("left_hip"), 0] > j0[names.index("right_hip"), 0]  # left is +X
    np.testing.assert_allclose(j0[0], [0, 1.0, 0], atol=1e-9)  # metres
    assert j0[names.index("head"), 1] > j0[names.index("spine3"), 1] > j0[names.index("spine1"), 1] > j0[0, 1]
    np.testing.assert_allclose(joints[-1, 0] - joints[0, 0], [0, 0, 0.30], atol=1e-9)  # 30 cm walked


def test_z_up_file_is_turned_y_up(tmp_path: Path) -> None:
    p = write_bvh(tmp_path / "zup.bvh", MIXAMO, z_up=True)
    joints, _ = bvh_to_joints(str(p))
    ref, _ = bvh_to_joints(str(write_bvh(tmp_path / "yup.bvh", MIXAMO)))
    np.testing.assert_allclose(joints, ref, atol=1e-9)


def test_smpl_names_map_directly() -> None:
    smpl = ["Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle", "Spine3",
            "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow",
            "R_Elbow", "L_Wrist", "R_Wrist"]
    m = name_based_map(smpl)
    assert m.name == "smpl_names" and m.targets == tuple(smpl)


def test_unknown_rig_lists_unmapped_joints() -> None:
    with pytest.raises(RigMappingError) as e:
        name_based_map(["root", "bone1", "bone2"], [-1, 0, 1])
    msg = str(e.value)
    assert "left_knee" in msg and "pelvis" in msg and "bone1" in msg


def test_missing_hands_use_end_sites_and_collars_are_interpolated() -> None:
    names = [n for n, _, _ in MIXAMO if "Hand" not in n and "Shoulder" not in n]
    names += ["LeftForeArm_End", "RightForeArm_End"]
    m = name_based_map(names)
    t = dict(zip(HUMANML3D_22.joint_names, m.targets, strict=True))
    assert t["left_wrist"] == "LeftForeArm_End"
    assert t["left_collar"] == Along(("Neck", "LeftArm"), 0.35)


def test_resolve_named_and_unknown_rig() -> None:
    assert resolve_rig(sorted(RIGS["bandai"].source_names())).name == "bandai"
    with pytest.raises(RigMappingError, match="unknown rig"):
        resolve_rig(["a"], rig="nope")
    with pytest.raises(RigMappingError, match="lacks joints"):
        resolve_rig(["Hips"], rig="bandai")


def test_along_is_arc_length_interpolation() -> None:
    rig = RigMap("t", tuple(Along(("a", "b", "c"), 0.5) for _ in range(22)))
    pos = np.array([[[0, 0, 0], [0, 1, 0], [0, 3, 0]], [[0, 0, 0], [2, 0, 0], [2, 0, 0]]], dtype=float)
    out = rig.apply(pos, ["a", "b", "c"])
    np.testing.assert_allclose(out[0, 0], [0, 1.5, 0])
    np.testing.assert_allclose(out[1, 0], [1, 0, 0])  # a zero-length segment is harmless


def test_units_guess_and_explicit() -> None:
    j = np.zeros((2, 22, 3))
    j[:, 4, 1], j[:, 5, 1], j[:, 7, 1], j[:, 8, 1] = -40, -40, -80, -80  # legs 80 long
    assert guess_unit(j) == "cm"
    assert guess_unit(j / 2.54) == "inch"
    assert guess_unit(j / 100) == "m"
    out, unit = to_metres_y_up(j, "inch")
    assert unit == "inch" and np.isclose(out[0, 7, 1], -80 * 0.0254)
    with pytest.raises(MotionDataError, match="unknown unit"):
        to_metres_y_up(j, "furlong")


def test_up_rotation_is_proper() -> None:
    j = np.zeros((1, 22, 3))
    j[0, 12] = [0, 0, 1]  # neck above the ankles along +Z
    r = up_rotation(j)
    np.testing.assert_allclose(r @ [0, 0, 1], [0, 1, 0], atol=1e-12)
    assert np.isclose(np.linalg.det(r), 1.0)


def test_resample() -> None:
    x = np.arange(13.0)[:, None]
    np.testing.assert_allclose(resample(x, 120, 20)[:, 0], [0, 6, 12])
    np.testing.assert_allclose(resample(np.arange(4.0)[:, None], 30, 20)[:, 0], [0, 1.5, 3])
    np.testing.assert_allclose(resample(np.arange(7.0)[:, None], 60, 20)[:, 0], [0, 3, 6])
