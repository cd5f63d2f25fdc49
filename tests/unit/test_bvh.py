"""BVH reader and forward kinematics on tiny hand-written files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ikmo.motion_model.data.bvh import bvh_world_positions, euler_to_matrix, read_bvh
from ikmo.motion_model.errors import InputFileError, MotionDataError

pytestmark = pytest.mark.unit

HIERARCHY = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Spine
  {
    OFFSET 0 0 1
    CHANNELS 3 Yrotation Xrotation Zrotation
    JOINT Head
    {
      OFFSET 0 0 2
      CHANNELS 6 Xposition Yposition Zposition Xrotation Yrotation Zrotation
      End Site
      {
        OFFSET 0 1 0
      }
    }
  }
}
"""


def _write(tmp_path: Path, frames: list[list[float]], n_frames: int | None = None, name: str = "a.bvh") -> Path:
    body = "\n".join(" ".join(str(v) for v in f) for f in frames)
    n = len(frames) if n_frames is None else n_frames
    p = tmp_path / name
    p.write_text(f"{HIERARCHY}MOTION\nFrames: {n}\nFrame Time: 0.0333333\n{body}\n")
    return p


# root pos(3) + root rot ZXY(3) + spine YXZ(3) + head pos(3) + head rot XYZ(3) = 15 channels
F0 = [1, 2, 3, 0, 0, 90, 0, 0, 0, 0, 0, 5, 0, 0, 0]


def test_reads_structure_channels_and_fps(tmp_path: Path) -> None:
    m = read_bvh(_write(tmp_path, [F0, F0]))
    assert m.names == ("Hips", "Spine", "Head")
    assert m.parents == (-1, 0, 1)
    assert m.rotation_orders == ("ZXY", "YXZ", "XYZ")
    assert m.n_frames == 2 and abs(m.fps - 30.0) < 1e-3
    np.testing.assert_allclose(m.root_translation[0], [1, 2, 3])
    # Position channels replace the OFFSET (0 0 2) of Head.
    np.testing.assert_allclose(m.translations[0, 2], [0, 0, 5])
    np.testing.assert_allclose(m.translations[0, 1], [0, 0, 1])
    assert m.end_site_names == ("Head_End",)


def test_forward_kinematics_by_hand(tmp_path: Path) -> None:
    # Root yaw of 90° about Y: a bone along +Z turns to +X.
    pos = bvh_world_positions(read_bvh(_write(tmp_path, [F0])), end_sites=True)
    np.testing.assert_allclose(pos[0, 0], [1, 2, 3], atol=1e-9)
    np.testing.assert_allclose(pos[0, 1], [2, 2, 3], atol=1e-9)
    np.testing.assert_allclose(pos[0, 2], [7, 2, 3], atol=1e-9)
    np.testing.assert_allclose(pos[0, 3], [7, 3, 3], atol=1e-9)  # End Site (0 1 0) is unaffected by yaw


@pytest.mark.parametrize("order", ["ZXY", "XYZ", "YXZ", "ZYX"])
def test_euler_order_matches_scipy_intrinsic(order: str) -> None:
    rng = np.random.default_rng(0)
    ang = rng.uniform(-180, 180, size=(5, 1, 3))
    ours = euler_to_matrix(ang, (order,))[:, 0]
    ref = Rotation.from_euler(order.upper(), ang[:, 0], degrees=True).as_matrix()  # upper case: intrinsic
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_chained_rotations_compose(tmp_path: Path) -> None:
    f = list(F0)
    f[3:6] = [30, 20, 10]  # root Z X Y
    f[6:9] = [40, -15, 5]  # spine Y X Z
    pos = bvh_world_positions(read_bvh(_write(tmp_path, [f])))
    r_root = Rotation.from_euler("ZXY", [30, 20, 10], degrees=True)
    r_spine = Rotation.from_euler("YXZ", [40, -15, 5], degrees=True)
    expect_head = np.array([1, 2, 3]) + r_root.apply([0, 0, 1]) + (r_root * r_spine).apply([0, 0, 5])
    np.testing.assert_allclose(pos[0, 2], expect_head, atol=1e-9)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="nope.bvh"):
        read_bvh(tmp_path / "nope.bvh")


def test_truncated_motion(tmp_path: Path) -> None:
    p = _write(tmp_path, [F0, F0[:7]])
    with pytest.raises(InputFileError, match="truncated"):
        read_bvh(p)


def test_frames_header_promises_more(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"a\.bvh.*truncated"):
        read_bvh(_write(tmp_path, [F0], n_frames=3))


def test_truncated_hierarchy(tmp_path: Path) -> None:
    p = tmp_path / "h.bvh"
    p.write_text(HIERARCHY[: HIERARCHY.index("End Site")])
    with pytest.raises(InputFileError, match="h.bvh"):
        read_bvh(p)


def test_not_a_bvh(tmp_path: Path) -> None:
    p = tmp_path / "x.bvh"
    p.write_text("hello world")
    with pytest.raises(InputFileError, match="not a BVH"):
        read_bvh(p)


def test_bad_channel_count(tmp_path: Path) -> None:
    p = tmp_path / "c.bvh"
    p.write_text(HIERARCHY.replace("CHANNELS 3 Yrotation Xrotation Zrotation", "CHANNELS 2 Yrotation Xrotation")
                 + "MOTION\nFrames: 0\nFrame Time: 0.03\n")
    with pytest.raises(InputFileError, match="Spine"):
        read_bvh(p)


def test_zero_frames(tmp_path: Path) -> None:
    with pytest.raises(MotionDataError, match="zero frames"):
        read_bvh(_write(tmp_path, []))


def test_nan_values(tmp_path: Path) -> None:
    bad = list(F0)
    bad[4] = float("nan")
    with pytest.raises(MotionDataError, match="frame 1"):
        read_bvh(_write(tmp_path, [F0, bad]))


def test_non_numeric_values(tmp_path: Path) -> None:
    bad: list = list(F0)
    bad[4] = "abc"
    with pytest.raises(InputFileError, match="non-numeric"):
        read_bvh(_write(tmp_path, [bad]))
