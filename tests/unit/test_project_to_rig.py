"""Generated joints are projected onto a rigid rig so that joints.npy, the BVH and the SMPL file agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ikmo.motion_model.data.bvh import bvh_world_positions, read_bvh
from ikmo.motion_model.representation.skeleton import HUMANML3D_22
from ikmo.tools.export_bvh import write_bvh
from ikmo.tools.rig_rotations import project_to_rig

pytestmark = pytest.mark.unit


def _deformed_motion(hml3d_fixture_dir: Path) -> np.ndarray:
    """The real fixture clip with what a diffusion model does to it: bones stretched by up to ~6 cm
    per frame and the pelvis fan (hips, spine) deformed."""
    joints = np.load(hml3d_fixture_dir / "new_joints" / "012314.npy").astype(np.float64)
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.02, joints.shape)
    noise[:, 0] = 0.0
    return joints + noise


def test_projection_has_the_skeleton_bone_lengths_and_keeps_the_root(hml3d_fixture_dir: Path) -> None:
    joints = _deformed_motion(hml3d_fixture_dir)
    parents = np.array(HUMANML3D_22.parents)
    before = np.linalg.norm(joints[:, 1:] - joints[:, parents[1:]], axis=-1)
    assert np.abs(before - HUMANML3D_22.bone_lengths[1:]).max() > 0.03  # the input really is deformed
    out = project_to_rig(joints)
    after = np.linalg.norm(out[:, 1:] - out[:, parents[1:]], axis=-1)
    assert np.abs(after - HUMANML3D_22.bone_lengths[1:]).max() < 1e-6
    assert np.array_equal(out[:, 0], joints[:, 0])
    # It is a projection, not a different motion: joints move by about the noise, not more.
    assert np.linalg.norm(out - joints, axis=-1).mean() < 0.05


def test_projected_motion_round_trips_through_bvh_exactly(tmp_path: Path, hml3d_fixture_dir: Path) -> None:
    joints = project_to_rig(_deformed_motion(hml3d_fixture_dir))
    path = tmp_path / "m.bvh"
    rig = write_bvh(path, joints)
    m = read_bvh(path)
    back = bvh_world_positions(m)[:, [m.names.index(n) for n in HUMANML3D_22.joint_names]]
    assert rig.max_error_m < 1e-3
    assert np.linalg.norm(back - joints, axis=-1).max() < 1e-3


def test_rigid_motion_is_left_unchanged(hml3d_fixture_dir: Path) -> None:
    joints = np.load(hml3d_fixture_dir / "new_joints" / "012314.npy").astype(np.float64)
    assert np.linalg.norm(project_to_rig(joints) - joints, axis=-1).max() < 2e-3
