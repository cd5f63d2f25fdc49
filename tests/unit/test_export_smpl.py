"""SMPL (.npz, AMASS-style) export: keys and shapes, rest-pose convention, exactness of the rig."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ikmo.motion_model.errors import MotionDataError, OutputFileError
from ikmo.motion_model.representation.skeleton import HUMANML3D_22
from ikmo.tools.export_smpl import smpl_params, write_smpl
from ikmo.tools.rig_rotations import T_POSE_DIRECTIONS_22, motion_rest_offsets, rig_forward

pytestmark = pytest.mark.unit

PARENTS = list(HUMANML3D_22.parents)


def _rest_joints(offsets: np.ndarray) -> np.ndarray:
    out = np.zeros_like(offsets)
    for j, p in enumerate(PARENTS):
        if p >= 0:
            out[j] = out[p] + offsets[j]
    return out + [0.0, 0.95, 0.0]


def _fk_from_params(params: dict, rest: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    poses = np.asarray(params["poses"], np.float64).reshape(-1, 24, 3)[:, :22]
    local = Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix().reshape(poses.shape[0], 22, 3, 3)
    offsets = np.zeros_like(rest)
    offsets[1:] = rest[1:] - rest[PARENTS[1:]]
    return rig_forward(params["trans"] + rest[0], local, offsets)


@pytest.fixture(scope="module")
def fixture_joints(hml3d_fixture_dir: Path) -> np.ndarray:
    return np.load(hml3d_fixture_dir / "new_joints" / "012314.npy").astype(np.float64)


def test_keys_shapes_and_file(tmp_path: Path, fixture_joints: np.ndarray) -> None:
    rest = _rest_joints(T_POSE_DIRECTIONS_22 * HUMANML3D_22.bone_lengths[:, None])
    path = write_smpl(tmp_path / "m.npz", fixture_joints, fps=20.0, rest_joints=rest)
    with np.load(path, allow_pickle=False) as z:
        T = fixture_joints.shape[0]
        assert z["poses"].shape == (T, 72) and z["poses"].dtype == np.float32
        assert np.all(z["poses"][:, 66:] == 0)  # hands at rest
        assert z["trans"].shape == (T, 3)
        assert z["betas"].shape == (10,) and not z["betas"].any()
        assert float(z["mocap_framerate"]) == 20.0
        assert str(z["gender"]) == "neutral" and str(z["up_axis"]) == "y"
        assert np.allclose(z["trans"] + rest[0], fixture_joints[:, 0], atol=1e-6)


def test_exact_when_rest_geometry_matches(fixture_joints: np.ndarray) -> None:
    """With a body model whose rest skeleton has the motion's own shape, SMPL FK reproduces the joints."""
    rest = _rest_joints(motion_rest_offsets(fixture_joints))
    fk = _fk_from_params(smpl_params(fixture_joints, rest_joints=rest), rest)
    assert np.linalg.norm(fk - fixture_joints, axis=-1).max() < 1e-4


def test_t_pose_rest_gives_bone_directions(fixture_joints: np.ndarray) -> None:
    """Against a generic T-pose rest (arms out, unlike HumanML3D's arms-down raw offsets) every bone
    leaving a single-child joint points exactly like the motion's; the pelvis/spine3 fans in the
    least-squares sense."""
    rest = _rest_joints(T_POSE_DIRECTIONS_22 * HUMANML3D_22.bone_lengths[:, None])
    fk = _fk_from_params(smpl_params(fixture_joints, rest_joints=rest), rest)

    def dirs(x: np.ndarray) -> np.ndarray:
        d = x[:, 1:] - x[:, PARENTS[1:]]
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    angle = np.degrees(np.arccos(np.clip((dirs(fk) * dirs(fixture_joints)).sum(-1), -1, 1))).max(0)
    fan = [c - 1 for c in (1, 2, 3, 12, 13, 14)]
    single = [i for i in range(21) if i not in fan]
    assert angle[single].max() < 0.05, angle
    assert angle[fan].max() < 15.0, angle


def test_z_up(fixture_joints: np.ndarray) -> None:
    rest = _rest_joints(motion_rest_offsets(fixture_joints))
    z = smpl_params(fixture_joints[:10], rest_joints=rest, up_axis="z")
    fk = _fk_from_params(z, rest)
    expected = fixture_joints[:10] @ np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]).T
    assert np.linalg.norm(fk - expected, axis=-1).max() < 1e-4
    assert expected[:, 0, 2].min() > 0.5  # the pelvis is up in z


def test_bad_input(tmp_path: Path) -> None:
    rest = _rest_joints(T_POSE_DIRECTIONS_22 * HUMANML3D_22.bone_lengths[:, None])
    with pytest.raises(MotionDataError, match="NaN"):
        smpl_params(np.full((3, 22, 3), np.nan), rest_joints=rest)
    with pytest.raises(MotionDataError, match="up_axis"):
        smpl_params(np.zeros((3, 22, 3)), rest_joints=rest, up_axis="x")  # type: ignore[arg-type]
    with pytest.raises(MotionDataError, match="rest_joints"):
        smpl_params(np.zeros((3, 22, 3)), rest_joints=np.zeros((5, 3)))
    blocker = tmp_path / "f"
    blocker.write_text("")
    with pytest.raises(OutputFileError):
        write_smpl(blocker / "m.npz", np.zeros((3, 22, 3)), rest_joints=rest)
