"""SMPL fitting of 22 target joints: recovery of known poses, hinge limits, depth-flip handling,
canonical facing, partial bodies, the landmark mapping, speed."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from ikmo.motion_model.errors import PoseEstimationError
from ikmo.tools.body_model import load_body_model
from ikmo.tools.pose_estimation import LM, Landmarks
from ikmo.tools.smpl_fit import (
    REGRESSOR_PATH,
    JointTargets,
    LandmarkRegressor,
    axis_angle_to_matrix,
    canonicalize,
    facing_rotation,
    fit_pose,
    fk_numpy,
    landmarks_to_joints,
    pose_from_landmarks,
    regressor_features,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def rest() -> np.ndarray:
    m = load_body_model()
    return m.rest_joints[:22] - m.rest_joints[0]


def _plausible_pose(rng: np.random.Generator) -> np.ndarray:
    """(22, 3) axis-angles: random yaw, moderate joint rotations, anatomical knee/elbow bends."""
    aa = rng.normal(0, 0.15, (22, 3))
    aa[0] = [rng.normal(0, 0.1), rng.uniform(-math.pi, math.pi), rng.normal(0, 0.1)]
    for knee in (4, 5):
        aa[knee] = [rng.uniform(0.2, 1.8), 0, 0]
    aa[18] = [0, -rng.uniform(0.2, 1.8), 0]
    aa[19] = [0, rng.uniform(0.2, 1.8), 0]
    aa[16] = [rng.normal(0, 0.3), rng.normal(0, 0.3), -rng.uniform(0.3, 1.2)]
    aa[17] = [rng.normal(0, 0.3), rng.normal(0, 0.3), rng.uniform(0.3, 1.2)]
    return aa


def _flexion(aa: np.ndarray, joint: int) -> float:
    """Signed hinge angle of a knee (+x) or elbow (∓y) from a local axis-angle row."""
    R = axis_angle_to_matrix(aa)
    axis = {4: [1, 0, 0], 5: [1, 0, 0], 18: [0, -1, 0], 19: [0, 1, 0]}[joint]
    a = np.asarray(axis, float)
    b = np.roll(a, 1)
    return float(np.cross(b, R @ b) @ a)


def test_fit_recovers_poses_from_their_joints(rest) -> None:
    rng = np.random.default_rng(1)
    for _ in range(5):
        aa = _plausible_pose(rng)
        joints = fk_numpy(axis_angle_to_matrix(aa), rest)
        fit = fit_pose(JointTargets(joints, np.ones(22), np.ones(22, bool)), rest)
        err = np.linalg.norm(fit.joints - joints, axis=1)
        assert err.max() < 0.02, err
        assert fit.error_m < 0.01
        # Hinges bend forwards, as the ground truth does.
        for j in (4, 5, 18, 19):
            assert _flexion(fit.body_pose[j - 1], j) > 0


def test_knee_never_bends_backwards(rest) -> None:
    # A leg whose ankle is in front of a straight-ish thigh line: a backward knee bend if read literally.
    aa = np.zeros((22, 3))
    aa[4] = [-0.6, 0, 0]  # hyperextended left knee (not anatomical)
    joints = fk_numpy(axis_angle_to_matrix(aa), rest)
    fit = fit_pose(JointTargets(joints, np.ones(22), np.ones(22, bool)), rest)
    assert _flexion(fit.body_pose[3], 4) > -0.05
    assert any("left_knee" in n for n in fit.notes)


def test_canonical_frame_removes_yaw(rest) -> None:
    rng = np.random.default_rng(2)
    aa = _plausible_pose(rng)
    aa[0] = [0, 0, 0]
    base = fk_numpy(axis_angle_to_matrix(aa), rest)
    outs = []
    for yaw in (0.0, 1.0, -2.5):
        c, s = math.cos(yaw), math.sin(yaw)
        Ry = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        fit = fit_pose(JointTargets(base @ Ry.T, np.ones(22), np.ones(22, bool)), rest)
        joints, go = canonicalize(fit)
        outs.append(joints)
        # The facing of the canonical pose is +Z.
        assert np.allclose(facing_rotation(joints), np.eye(3), atol=1e-6)
        # The canonical global_orient reproduces the canonical joints.
        again = fk_numpy(axis_angle_to_matrix(np.concatenate([go[None], fit.body_pose])), rest)
        np.testing.assert_allclose(again, joints, atol=1e-6)
    np.testing.assert_allclose(outs[0], outs[1], atol=0.01)
    np.testing.assert_allclose(outs[0], outs[2], atol=0.01)


def test_masked_legs_are_not_fitted(rest) -> None:
    rng = np.random.default_rng(3)
    aa = _plausible_pose(rng)
    joints = fk_numpy(axis_angle_to_matrix(aa), rest)
    mask = np.ones(22, bool)
    mask[[4, 5, 7, 8, 10, 11]] = False
    wild = joints.copy()
    wild[[4, 5, 7, 8, 10, 11]] += 5.0  # garbage where masked: must be ignored
    fit = fit_pose(JointTargets(wild, mask.astype(float), mask), rest)
    assert np.linalg.norm(fit.joints - joints, axis=1)[mask].max() < 0.05
    assert np.abs(fit.joints).max() < 1.5


def _landmarks_from_joints(joints: np.ndarray, visible: np.ndarray | None = None) -> Landmarks:
    """Synthetic BlazePose landmarks (y-up frame → mediapipe axes) placed at the corresponding joints."""
    pick = {"left_shoulder": 16, "right_shoulder": 17, "left_elbow": 18, "right_elbow": 19, "left_wrist": 20,
            "right_wrist": 21, "left_hip": 1, "right_hip": 2, "left_knee": 4, "right_knee": 5,
            "left_ankle": 7, "right_ankle": 8}
    W = np.zeros((33, 3))
    for name, j in pick.items():
        W[LM[name]] = joints[j]
    W[LM["left_heel"]] = joints[7] + [0, -0.05, -0.05]
    W[LM["right_heel"]] = joints[8] + [0, -0.05, -0.05]
    W[LM["left_foot_index"]] = joints[10] + [0, -0.03, 0.06]
    W[LM["right_foot_index"]] = joints[11] + [0, -0.03, 0.06]
    W[LM["nose"]] = joints[15] + [0, 0.05, 0.12]
    W[LM["left_ear"]] = joints[15] + [0.07, 0.07, 0.0]
    W[LM["right_ear"]] = joints[15] + [-0.07, 0.07, 0.0]
    vis = np.ones(33) if visible is None else visible
    xy = np.stack([256 + 200 * W[:, 0], 256 - 200 * W[:, 1]], 1)
    mp_world = W * np.array([1.0, -1.0, -1.0])
    return Landmarks(world=mp_world.astype(np.float32), image_xy=xy.astype(np.float32),
                     visibility=vis.astype(np.float32), presence=vis.astype(np.float32), image_size=(512, 512))


def test_landmark_mapping_and_fit_of_a_clean_skeleton(rest) -> None:
    aa = np.zeros((22, 3))
    aa[16], aa[17] = [0, 0, -1.2], [0, 0, 1.2]
    aa[4], aa[1] = [0.8, 0, 0], [-0.8, 0, 0]  # left leg raised forward, knee bent
    joints = fk_numpy(axis_angle_to_matrix(aa), rest)
    # The hand-made mapping (the learned correction is trained on BlazePose's errors, which these
    # exact synthetic landmarks do not have; it is tested below).
    kf, fit, targets = pose_from_landmarks(_landmarks_from_joints(joints), regressor=None)
    assert all(kf.joint_mask)
    err = np.linalg.norm(kf.joints_array() - joints, axis=1)
    assert err.mean() < 0.05, err
    assert err[[7, 20, 21]].max() < 0.1
    assert kf.smpl_pose is not None and len(kf.smpl_pose) == 21
    assert _flexion(np.asarray(kf.smpl_pose[3]), 4) > 0.4


def test_upper_body_photo_gives_partial_mask(rest) -> None:
    joints = fk_numpy(np.tile(np.eye(3), (22, 1, 1)), rest)
    vis = np.ones(33)
    for name in ("left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
                 "left_foot_index", "right_foot_index"):
        vis[LM[name]] = 0.05
    targets = landmarks_to_joints(_landmarks_from_joints(joints, vis), rest)
    assert not targets.mask[[4, 5, 7, 8, 10, 11]].any()
    assert targets.mask[[16, 17, 18, 19, 20, 21, 15]].all()
    assert (targets.confidence[~targets.mask] == 0).all()


def test_no_shoulders_is_an_error(rest) -> None:
    joints = fk_numpy(np.tile(np.eye(3), (22, 1, 1)), rest)
    vis = np.ones(33)
    vis[[LM["left_shoulder"], LM["right_shoulder"]]] = 0.1
    with pytest.raises(PoseEstimationError, match="shoulders"):
        landmarks_to_joints(_landmarks_from_joints(joints, vis), rest)


def test_fit_is_fast(rest) -> None:
    rng = np.random.default_rng(4)
    joints = fk_numpy(axis_angle_to_matrix(_plausible_pose(rng)), rest)
    t = JointTargets(joints, np.ones(22), np.ones(22, bool))
    fit_pose(t, rest)  # warm-up
    t0 = time.perf_counter()
    fit_pose(t, rest)
    # Budget 0.3 s per image on an idle core; allow slack for a loaded CI machine.
    assert time.perf_counter() - t0 < 1.0


def _yaw(ang: float) -> np.ndarray:
    c, s = math.cos(ang), math.sin(ang)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def test_learned_correction_acts_in_the_body_facing_frame(rest) -> None:
    joints = fk_numpy(np.tile(np.eye(3), (22, 1, 1)), rest)
    lm = _landmarks_from_joints(joints)
    W = lm.world_yup().astype(np.float64)
    n_feat = regressor_features(joints, W, lm.image_xy, lm.visibility)[0].shape[0]
    zero = LandmarkRegressor(weight=np.zeros((n_feat, 66)), mean=np.zeros(n_feat), std=np.ones(n_feat),
                             bias=np.zeros(66))
    np.testing.assert_allclose(zero.correct(joints, W, lm.image_xy, lm.visibility), joints, atol=1e-12)
    # A bias moving the left wrist 10 cm forward (facing frame) moves it along the body's own forward
    # direction whichever way the body is turned to the camera.
    bias = np.zeros((22, 3))
    bias[20] = [0, 0, 0.1]
    fwd = LandmarkRegressor(weight=zero.weight, mean=zero.mean, std=zero.std, bias=bias.ravel())
    for ang in (0.0, 0.8, -2.0):
        Ry = _yaw(ang)
        turned = joints @ Ry.T
        out = fwd.correct(turned, W @ Ry.T, lm.image_xy, lm.visibility)
        np.testing.assert_allclose(out[20] - turned[20], Ry @ [0, 0, 0.1], atol=1e-3)
        np.testing.assert_allclose(out[20] - turned[20], facing_rotation(turned).T @ [0, 0, 0.1], atol=1e-9)
        np.testing.assert_allclose(np.delete(out, 20, 0), np.delete(turned, 20, 0), atol=1e-9)


def test_bundled_regressor_matches_the_features(rest) -> None:
    reg = LandmarkRegressor.load(REGRESSOR_PATH)
    assert reg is not None, "tools/assets/landmark_regressor.npz is missing; run scripts/make_landmark_regressor.py"
    assert REGRESSOR_PATH.stat().st_size < 1_000_000
    joints = fk_numpy(np.tile(np.eye(3), (22, 1, 1)), rest)
    lm = _landmarks_from_joints(joints)
    f, _ = regressor_features(joints, lm.world_yup().astype(np.float64), lm.image_xy, lm.visibility)
    assert reg.weight.shape == (f.shape[0], 66) and reg.mean.shape == f.shape and reg.bias.shape == (66,)
    assert np.isfinite(reg.weight).all() and (reg.std > 0).all()
    # A correction, not a replacement: on a plain standing body (arms down) it moves joints by at most
    # a few decimetres (these synthetic landmarks lack BlazePose's biases, so it over-corrects the
    # wrists' depth by ~0.2 m; a broken asset or frame mix-up moves them by metres).
    aa = np.zeros((22, 3))
    aa[16], aa[17] = [0, 0, -1.2], [0, 0, 1.2]
    standing = fk_numpy(axis_angle_to_matrix(aa), rest)
    lm = _landmarks_from_joints(standing)
    lm.world[[LM["left_index"], LM["right_index"]]] = lm.world[[LM["left_wrist"], LM["right_wrist"]]]
    lm.image_xy[[LM["left_index"], LM["right_index"]]] = lm.image_xy[[LM["left_wrist"], LM["right_wrist"]]]
    out = reg.correct(standing, lm.world_yup().astype(np.float64), lm.image_xy, lm.visibility)
    moved = np.linalg.norm(out - standing, axis=1)
    assert moved.max() < 0.3 and np.median(moved) < 0.08, moved


def test_learned_correction_skipped_for_a_cropped_body(rest) -> None:
    joints = fk_numpy(np.tile(np.eye(3), (22, 1, 1)), rest)
    lm = _landmarks_from_joints(joints)
    assert not np.allclose(landmarks_to_joints(lm, rest).points, landmarks_to_joints(lm, rest, regressor=None).points)
    # Feet below the bottom of the photo: the correction never saw such inputs, the hand mapping is kept.
    for name in ("left_ankle", "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index"):
        lm.image_xy[LM[name], 1] = 600.0
    cropped = landmarks_to_joints(lm, rest)
    np.testing.assert_allclose(cropped.points, landmarks_to_joints(lm, rest, regressor=None).points)
    assert any("outside the image" in n for n in cropped.notes)


def test_learned_correction_skipped_for_a_back_view(rest) -> None:
    joints = fk_numpy(np.tile(np.eye(3), (22, 1, 1)), rest) @ _yaw(math.pi).T  # seen from behind
    lm = _landmarks_from_joints(joints)
    t = landmarks_to_joints(lm, rest)
    np.testing.assert_allclose(t.points, landmarks_to_joints(lm, rest, regressor=None).points)
    assert any("turned" in n for n in t.notes)


def test_mirror_keyframe_swaps_left_and_right_in_joints_and_smpl() -> None:
    """A posed body (right arm up, left knee bent) mirrored: the left arm is up and the right knee bent,
    the mirrored SMPL rotations pose the body into the mirrored joints (up to the mannequin's own
    left/right asymmetry), and mirroring twice gives the keyframe back."""
    from ikmo.motion_model.constraints import KeyframePose
    from ikmo.motion_model.representation.skeleton import HUMANML3D_22
    from ikmo.tools.smpl_fit import mirror_keyframe

    bm = load_body_model()
    go = np.array([0.1, 0.3, -0.05])
    bp = np.zeros((21, 3))
    bp[15] = [0.0, 0.0, -1.2]  # left shoulder (joint 16): arm down from the T-pose
    bp[16] = [0.0, 0.2, -1.0]  # right shoulder (joint 17): arm raised
    bp[3] = [0.9, 0.0, 0.1]  # left knee (joint 4): bent
    bp[0] = [-0.6, 0.1, 0.0]  # left hip (joint 1): thigh forward

    def fk(go: np.ndarray, bp: np.ndarray) -> np.ndarray:
        _, j = bm.forward(go, bp)
        return j[0, :22] - j[0, 0]

    joints = fk(go, bp)
    mask = [True] * 22
    mask[10] = False  # left foot unseen
    conf = list(np.linspace(0.5, 0.95, 22))
    kf = KeyframePose(time_s=1.0, joints=joints.tolist(), joint_mask=mask, confidence=conf,
                      smpl_pose=bp.tolist(), global_orient=go.tolist(), root_position=[1.0, 0.9, 2.0])
    m = mirror_keyframe(kf)
    J = m.joints_array()
    assert J[20, 1] > J[16, 1] + 0.2 and J[21, 1] < J[17, 1]  # left wrist raised, right one down
    assert np.allclose(J[5], joints[4] * [-1, 1, 1]) and np.allclose(J[0], joints[0])
    assert m.joint_mask[11] is False and m.joint_mask[10] is True and m.confidence[2] == kf.confidence[1]
    assert m.root_position == kf.root_position and m.notes[-1].startswith("mirrored")
    rest22 = bm.rest_joints[:22] - bm.rest_joints[0]
    mirrored_rest = rest22[list(HUMANML3D_22.mirror_map)] * [-1, 1, 1]
    asym = np.linalg.norm(mirrored_rest - rest22, axis=1).max()  # the mannequin is 8 mm off symmetric
    err = np.linalg.norm(fk(np.asarray(m.global_orient), np.asarray(m.smpl_pose)) - J, axis=1).max()
    # permuting the rotations without reflecting them (the wrong mirror) misses by decimetres
    naive = np.asarray(kf.smpl_pose)[[k - 1 for k in HUMANML3D_22.mirror_map[1:]]]
    wrong = np.linalg.norm(fk(go, naive) - J, axis=1).max()
    assert err < 3 * asym and wrong > 20 * err
    back = mirror_keyframe(m)
    assert np.allclose(back.joints_array(), joints) and np.allclose(back.smpl_pose, bp)
    assert back.joint_mask == mask and np.allclose(back.global_orient, go)
