"""Proof that our representation code is HumanML3D's, against one real clip of the dataset.

`new_joints/012314.npy` (N, 22, 3) was recovered by HumanML3D from `new_joint_vecs/012314.npy`
(N, 263), which it had extracted from N + 1 canonical positions we do not have.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ikmo.motion_model.representation.features import (
    Normalizer,
    bone_lengths,
    feature_layout,
    features_to_joints,
    features_to_local_rotations,
    forward_kinematics,
    joints_to_features,
    mirror_features,
    mirror_joints,
)
from ikmo.motion_model.representation.skeleton import HUMANML3D_22

pytestmark = pytest.mark.integration

CLIP = "012314"
# The root rotation of the features comes from the forward direction smoothed with a Gaussian of
# σ = 20 frames truncated at 80 frames. Re-extracting from the N recovered positions lacks the
# original last frame, so rows whose window (row t uses frames t and t+1) reaches it differ; rows
# t + 1 + 80 < N - 1 see identical input and must match exactly.
SMOOTH_RADIUS = 80

# Max abs error per block over the rows that the missing frame touches, measured on this clip
# (float32 data, float64 computation) with about 1.5x headroom. Root height and foot contacts
# do not depend on the root rotation and stay exact.
TAIL_BOUNDS = {
    "root_rot_vel": 5e-4,   # measured 3.0e-4
    "root_lin_vel": 2e-4,   # measured 1.4e-4
    "root_y": 1e-6,         # measured 0
    "ric": 1e-2,            # measured 6.8e-3
    "rot6d": 2e-2,          # measured 1.3e-2
    "local_vel": 6e-4,      # measured 4.1e-4
    "contacts": 0.0,        # measured 0
}  # fmt: skip


@pytest.fixture(scope="module")
def clip(hml3d_fixture_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    feats = np.load(hml3d_fixture_dir / "new_joint_vecs" / f"{CLIP}.npy")
    joints = np.load(hml3d_fixture_dir / "new_joints" / f"{CLIP}.npy")
    assert feats.shape[1] == 263 and joints.shape == (feats.shape[0], 22, 3)
    return feats, joints


def test_features_to_joints_matches_recovered_joints(clip: tuple[np.ndarray, np.ndarray]) -> None:
    feats, joints = clip
    ours = features_to_joints(feats)
    assert ours.dtype == np.float32 and ours.shape == joints.shape
    assert np.abs(ours - joints).max() <= 1e-4  # measured 2.4e-7 m
    # The torch path (float32, batched) gives the same answer.
    batch = torch.from_numpy(np.stack([feats, feats]))
    out = features_to_joints(batch)
    assert isinstance(out, torch.Tensor) and out.shape == (2, *joints.shape)
    assert (out - torch.from_numpy(joints)).abs().max().item() <= 1e-4


def test_joints_to_features_matches_block_by_block(clip: tuple[np.ndarray, np.ndarray]) -> None:
    feats, joints = clip
    ours = joints_to_features(joints, canonical=False)
    n = ours.shape[0]
    assert ours.shape == (feats.shape[0] - 1, 263)
    clean = n - 1 - SMOOTH_RADIUS  # rows 0..clean-1 see exactly the original input
    lay = feature_layout(HUMANML3D_22)
    for name, sl in lay.blocks().items():
        head = np.abs(ours[:clean, sl] - feats[:clean, sl]).max()
        tail = np.abs(ours[clean:, sl] - feats[clean:n, sl]).max()
        # measured ≤ 7.7e-6 (rot6d; float32 input), ≤ 3.4e-7 for the other blocks
        assert head <= 2e-5, f"{name}: {head:.2e} on the rows the missing frame cannot affect"
        assert tail <= TAIL_BOUNDS[name], f"{name}: {tail:.2e} on the last {n - clean} rows"


def test_canonicalize_is_idempotent_on_canonical_data(clip: tuple[np.ndarray, np.ndarray]) -> None:
    # The clip is already retargeted, on the floor, at the origin and facing +Z: canonicalising it
    # again must change (almost) nothing, so the two extraction paths agree.
    _, joints = clip
    # The file's bone lengths are the target's only up to float32 (4.3e-5 m off), so retargeting
    # moves joints by ~1e-4 m; measured max feature difference 2.4e-4.
    a = joints_to_features(joints, canonical=True)
    b = joints_to_features(joints, canonical=False)
    assert np.abs(a - b).max() <= 5e-4


def test_invariants_hold_on_every_row(clip: tuple[np.ndarray, np.ndarray]) -> None:
    # Where the tail rows differ from the file they differ by an equally valid root rotation; what
    # must hold everywhere: features → joints gives the input back, and FK of the 6D rotations
    # (HumanML3D's recover_from_rot) reproduces the positions.
    _, joints = clip
    ours = joints_to_features(joints, canonical=False)
    assert np.abs(features_to_joints(ours) - joints[:-1]).max() <= 1e-5
    quats, root = features_to_local_rotations(ours)
    own_offsets = HUMANML3D_22.raw_offsets * bone_lengths(torch.from_numpy(joints[0]).double()).numpy()[:, None]
    assert np.abs(forward_kinematics(quats, root, offsets=own_offsets) - joints[:-1]).max() <= 1e-5


def test_file_features_fk_reproduces_file_joints(clip: tuple[np.ndarray, np.ndarray]) -> None:
    # recover_from_rot on HumanML3D's own features: checks our bone convention and 6D decoding
    # (first two matrix columns) against the dataset itself.
    feats, joints = clip
    quats, root = features_to_local_rotations(feats)
    # Measured 1.2e-4 m: the file's positions carry float32 bone lengths (4.3e-5 m from the target's).
    assert np.abs(forward_kinematics(quats, root) - joints).max() <= 3e-4


def test_mirror_of_fixture_round_trips(clip: tuple[np.ndarray, np.ndarray]) -> None:
    feats, joints = clip
    mirrored = mirror_features(feats)
    assert np.abs(mirror_features(mirrored) - feats).max() == 0.0
    assert np.abs(features_to_joints(mirrored) - mirror_joints(joints)).max() <= 1e-4


def test_normalizer_matches_dataset_statistics(hml3d_fixture_dir: Path, clip: tuple[np.ndarray, np.ndarray],
                                               tmp_path: Path) -> None:
    feats, _ = clip
    norm = Normalizer.from_dir(hml3d_fixture_dir)
    assert norm.dim == 263
    z = norm.normalize(feats)
    assert np.abs(norm.denormalize(z) - feats).max() <= 1e-5
    # HumanML3D shares one std per block: our fit reproduces that structure.
    lay = feature_layout(HUMANML3D_22)
    for sl in lay.blocks().values():
        assert np.unique(norm.std[sl]).size == 1
    norm.save(tmp_path)
    again = Normalizer.from_dir(tmp_path)
    np.testing.assert_array_equal(again.mean, norm.mean)
    np.testing.assert_array_equal(again.std, norm.std)
