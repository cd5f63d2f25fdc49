"""HumanML3D representation on synthetic motions built by our own forward kinematics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ikmo.motion_model.errors import MotionDataError
from ikmo.motion_model.representation import rotations as R
from ikmo.motion_model.representation.features import (
    Normalizer,
    bone_lengths,
    canonicalize,
    facing_quat,
    feature_layout,
    features_to_joints,
    features_to_local_rotations,
    features_to_root,
    foot_contacts,
    forward_kinematics,
    gaussian_smooth_time,
    inverse_kinematics,
    joints_to_features,
    mirror_features,
    mirror_joints,
    rotation_parents,
    uniform_skeleton,
)
from ikmo.motion_model.representation.skeleton import HUMANML3D_22, KIT_21, Skeleton

pytestmark = pytest.mark.unit

SKELETONS = [HUMANML3D_22, KIT_21]


def synthetic_motion(skel: Skeleton, n_frames: int = 48, seed: int = 0, scale: float = 1.0,
                     yaw0_deg: float = 70.0) -> np.ndarray:
    """A smooth made-up motion (n_frames, J, 3) in metres: swinging limbs, a turning, walking root.

    Bone lengths are ``scale`` × the skeleton's; the body starts facing ``yaw0_deg`` from +Z.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames)[:, None, None] / 20.0
    amp = rng.uniform(0.1, 0.5, size=(1, skel.n_joints, 3))
    freq = rng.uniform(0.5, 2.0, size=(1, skel.n_joints, 3))
    phase = rng.uniform(0, 2 * math.pi, size=(1, skel.n_joints, 3))
    aa = amp * np.sin(2 * math.pi * freq * t + phase)  # (T, J, 3) axis-angle of each bone
    local = R.axis_angle_to_quat(torch.from_numpy(aa))
    yaw = torch.from_numpy(math.radians(yaw0_deg) + 0.6 * np.sin(np.arange(n_frames) / 15.0))
    local[:, 0] = R.yaw_quat(yaw)
    root = np.stack([0.8 * t[:, 0, 0] + 0.3, 0.9 * scale + 0.03 * np.sin(6 * t[:, 0, 0]),
                     0.4 * t[:, 0, 0] - 1.2], axis=-1)
    joints = forward_kinematics(local, torch.from_numpy(root), skel,
                                offsets=torch.from_numpy(skel.offsets() * scale))
    return joints.numpy()


@pytest.mark.parametrize("skel", SKELETONS, ids=lambda s: s.name)
def test_features_round_trip_to_canonical_joints(skel: Skeleton) -> None:
    joints = synthetic_motion(skel, scale=1.15)
    feats = joints_to_features(joints, skel)
    assert feats.shape == (joints.shape[0] - 1, skel.feature_dim)
    assert feature_layout(skel).dim == skel.feature_dim
    canon = canonicalize(joints, skel)
    back = features_to_joints(feats, skel)
    np.testing.assert_allclose(back, canon[:-1], atol=1e-6)


@pytest.mark.parametrize("skel", SKELETONS, ids=lambda s: s.name)
def test_canonical_frame(skel: Skeleton) -> None:
    joints = synthetic_motion(skel, scale=0.9, yaw0_deg=-135.0)
    canon = canonicalize(joints, skel)
    assert abs(canon[..., 1].min()) < 1e-9  # on the floor
    np.testing.assert_allclose(canon[0, 0, [0, 2]], 0.0, atol=1e-9)  # root xz at the origin
    # frame 0 faces +Z
    q0 = facing_quat(torch.from_numpy(canon[:1]), skel, ik_order=False)
    np.testing.assert_allclose(q0[0].numpy(), [1.0, 0.0, 0.0, 0.0], atol=1e-9)
    # retargeted onto the skeleton's bone lengths, the root trajectory scaled by the leg ratio
    lengths = bone_lengths(canon, skel)
    np.testing.assert_allclose(lengths, np.broadcast_to(skel.bone_lengths, lengths.shape), atol=1e-9)
    uni = uniform_skeleton(joints, skel)
    np.testing.assert_allclose(uni[:, 0], joints[:, 0] / 0.9, atol=1e-9)


@pytest.mark.parametrize("skel", SKELETONS, ids=lambda s: s.name)
def test_inverse_then_forward_kinematics_reproduces_positions(skel: Skeleton) -> None:
    joints = synthetic_motion(skel, scale=1.3)
    quats = inverse_kinematics(joints, skel, smooth_forward=True)
    np.testing.assert_allclose(np.linalg.norm(quats, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(quats[0, 0], [1.0, 0.0, 0.0, 0.0])  # HumanML3D: frame 0 root = identity
    fk = forward_kinematics(quats, joints[:, 0], skel, offsets=skel.offsets() * 1.3)
    np.testing.assert_allclose(fk, joints, atol=1e-9)


def test_rotation_parents_follow_humanml3d_chains() -> None:
    # t2m chains: [0,2,5,8,11], [0,1,4,7,10], [0,3,6,9,12,15], [9,14,17,19,21], [9,13,16,18,20]:
    # the collars start chains from the root's rotation, the neck continues the spine's.
    rp = rotation_parents(HUMANML3D_22)
    assert rp[12] == 9 and rp[13] == 0 and rp[14] == 0 and rp[15] == 12 and rp[16] == 13
    assert rp[1] == rp[2] == rp[3] == 0
    rk = rotation_parents(KIT_21)  # [0,1,2,3,4], [3,5,6,7], [3,8,9,10]
    assert rk[4] == 3 and rk[5] == 0 and rk[8] == 0 and rk[6] == 5


@pytest.mark.parametrize("skel", SKELETONS, ids=lambda s: s.name)
def test_local_rotations_of_features_reproduce_joints(skel: Skeleton) -> None:
    feats = joints_to_features(synthetic_motion(skel), skel)
    quats, root = features_to_local_rotations(feats, skel)
    np.testing.assert_allclose(forward_kinematics(quats, root, skel), features_to_joints(feats, skel), atol=1e-6)


@pytest.mark.parametrize("skel", SKELETONS, ids=lambda s: s.name)
def test_mirroring(skel: Skeleton) -> None:
    canon = canonicalize(synthetic_motion(skel, seed=3), skel)
    np.testing.assert_array_equal(mirror_joints(mirror_joints(canon, skel), skel), canon)
    feats = joints_to_features(canon, skel, canonical=False)
    mirrored = mirror_features(feats, skel)
    np.testing.assert_array_equal(mirror_features(mirrored, skel), feats)
    expected = joints_to_features(mirror_joints(canon, skel), skel, canonical=False)
    np.testing.assert_allclose(mirrored, expected, atol=1e-9)
    np.testing.assert_allclose(features_to_joints(mirrored, skel), mirror_joints(canon[:-1], skel), atol=1e-9)
    # the left foot's contacts become the right foot's
    lay = feature_layout(skel)
    np.testing.assert_array_equal(mirrored[:, lay.contacts], feats[:, lay.contacts][:, [2, 3, 0, 1]])


def test_features_to_root_integrates_velocities() -> None:
    # A straight walk along +Z at 1 m/s, 20 fps, without turning.
    n = 10
    f = torch.zeros(n, HUMANML3D_22.feature_dim, dtype=torch.float64)
    f[:, 2] = 0.05
    f[:, 3] = 0.9
    r_rot, r_pos = features_to_root(f)
    torch.testing.assert_close(r_rot, R.quat_identity((n,), torch.float64))
    torch.testing.assert_close(r_pos[:, 2], 0.05 * torch.arange(n, dtype=torch.float64))
    torch.testing.assert_close(r_pos[:, 1], torch.full((n,), 0.9, dtype=torch.float64))
    # A constant yaw rate: the stored value is half the heading change per frame, and r_rot maps
    # world to body, so a positive rate turns the body towards -X (its right).
    f[:, 0] = 0.1
    r_rot, _ = features_to_root(f)
    torch.testing.assert_close(R.quat_yaw(r_rot)[3], torch.tensor(0.6, dtype=torch.float64))
    torch.testing.assert_close(R.quat_yaw(R.quat_conj(r_rot))[3], torch.tensor(-0.6, dtype=torch.float64))


def test_batched_torch_matches_single_clip_numpy() -> None:
    clips = [joints_to_features(synthetic_motion(HUMANML3D_22, seed=s)) for s in range(3)]
    batch = torch.from_numpy(np.stack(clips)).float()
    out = features_to_joints(batch)
    assert out.shape == (3, clips[0].shape[0], 22, 3) and out.dtype == torch.float32
    for i, c in enumerate(clips):
        np.testing.assert_allclose(out[i].numpy(), features_to_joints(c), atol=1e-4)
    # joints_to_features batches over leading dims too
    joints = torch.from_numpy(np.stack([synthetic_motion(HUMANML3D_22, seed=s) for s in range(2)]))
    torch.testing.assert_close(joints_to_features(joints)[1], torch.from_numpy(clips[1]))


def test_features_to_joints_gradient() -> None:
    # Check the root block and the first joints' ric (the rest are the same ops, column-wise)
    # against finite differences; a few inputs keep it fast.
    f = torch.from_numpy(joints_to_features(synthetic_motion(HUMANML3D_22, n_frames=5)))
    head = f[:, :10].clone().requires_grad_(True)

    def fn(x: torch.Tensor) -> torch.Tensor:
        return features_to_joints(torch.cat((x, f[:, 10:]), dim=-1))[..., [0, 1, 2, 21], :]

    assert torch.autograd.gradcheck(fn, (head,))


def test_joints_to_features_is_differentiable() -> None:
    j = torch.from_numpy(synthetic_motion(HUMANML3D_22, n_frames=8)).requires_grad_(True)
    joints_to_features(j).square().sum().backward()
    assert j.grad is not None and torch.isfinite(j.grad).all() and j.grad.abs().sum() > 0


def test_gaussian_smoothing_matches_scipy() -> None:
    from scipy.ndimage import gaussian_filter1d

    x = np.random.default_rng(0).normal(size=(30, 3))
    ours = gaussian_smooth_time(torch.from_numpy(x), 20.0).numpy()
    np.testing.assert_allclose(ours, gaussian_filter1d(x, 20, axis=0, mode="nearest"), atol=1e-12)


def test_foot_contacts() -> None:
    joints = np.zeros((5, 22, 3))
    joints[:, 8, 2] = np.arange(5) * 0.1  # right ankle slides 10 cm per frame
    c = foot_contacts(joints, HUMANML3D_22, 0.002)
    assert c.shape == (4, 4)
    np.testing.assert_array_equal(c, np.tile([1.0, 1.0, 0.0, 1.0], (4, 1)))


def test_bad_input_raises_our_error() -> None:
    with pytest.raises(MotionDataError, match="263"):
        features_to_joints(np.zeros((10, 251)))
    with pytest.raises(MotionDataError, match="T>=2"):
        joints_to_features(np.zeros((1, 22, 3)))
    with pytest.raises(MotionDataError, match="22, 3"):
        joints_to_features(np.zeros((10, 21, 3)))
    bad = synthetic_motion(HUMANML3D_22)
    bad[3, 4, 1] = np.nan
    with pytest.raises(MotionDataError, match="NaN"):
        joints_to_features(bad)


def test_normalizer_fit_round_trip_and_io(tmp_path: Path) -> None:
    feats = np.concatenate([joints_to_features(synthetic_motion(HUMANML3D_22, seed=s)) for s in range(3)])
    norm = Normalizer.fit(feats)
    lay = feature_layout(HUMANML3D_22)
    for sl in lay.blocks().values():
        assert np.unique(norm.std[sl]).size == 1
    np.testing.assert_allclose(norm.mean, feats.mean(0), rtol=1e-5, atol=1e-7)
    z = norm.normalize(torch.from_numpy(feats).float())
    assert isinstance(z, torch.Tensor)
    np.testing.assert_allclose(norm.denormalize(z).numpy(), feats, atol=1e-5)
    norm.save(tmp_path / "stats")
    np.testing.assert_array_equal(Normalizer.from_dir(tmp_path / "stats").std, norm.std)
    with pytest.raises(MotionDataError, match="Mean.npy"):
        Normalizer.from_dir(tmp_path / "nowhere")
    with pytest.raises(MotionDataError, match="columns"):
        norm.normalize(np.zeros((2, 251)))
