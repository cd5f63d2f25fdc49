"""Each metric of ikmo.eval.metrics against a value computed by hand on hand-made data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ikmo.eval import metrics as M
from ikmo.motion_model.errors import MotionDataError

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(0)


# --------------------------------------------------------------------------- FID, diversity, R-precision


def test_fid_identical_sets_is_zero() -> None:
    acts = RNG.normal(size=(200, 8))
    assert M.fid(acts, acts) == pytest.approx(0.0, abs=1e-6)


def test_fid_of_shifted_set_is_squared_shift() -> None:
    acts = RNG.normal(size=(300, 6))
    shift = np.array([0.5, -1.0, 2.0, 0.0, 0.0, 0.25])
    # Shifting leaves the empirical covariance unchanged: FID = |shift|².
    assert M.fid(acts, acts + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_frechet_distance_of_diagonal_gaussians() -> None:
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 2.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 1.0])
    # |mu|² = 9; trace term: (1+4-2*2) + (4+1-2*2) + (9+1-2*3) = 1 + 1 + 4
    assert M.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(15.0, abs=1e-8)


def test_fid_with_fewer_samples_than_dims_is_finite() -> None:
    a, b = RNG.normal(size=(5, 16)), RNG.normal(size=(5, 16))
    assert np.isfinite(M.fid(a, b))


def test_fid_rejects_single_sample() -> None:
    with pytest.raises(MotionDataError):
        M.fid(np.zeros((1, 3)), np.zeros((4, 3)))


def test_diversity_of_one_hot_vectors_is_sqrt2() -> None:
    acts = np.eye(10)
    assert M.diversity(acts, n_pairs=500, seed=3) == pytest.approx(np.sqrt(2.0))


def test_diversity_of_identical_vectors_is_zero_and_scales_linearly() -> None:
    assert M.diversity(np.ones((20, 4)), seed=1) == 0.0
    acts = RNG.normal(size=(50, 4))
    d = M.diversity(acts, seed=7)
    assert M.diversity(3.0 * acts + 5.0, seed=7) == pytest.approx(3.0 * d)


def test_r_precision_perfect_and_known_misses() -> None:
    text = np.eye(4) * 10.0
    assert M.r_precision(text, text.copy(), top_k=3, pool_size=4).r_precision == [1.0, 1.0, 1.0]
    # Motion i sits nearest to text (i+1) % 4 and second nearest to its own text i.
    motion = np.stack([0.4 * text[i] + 0.6 * text[(i + 1) % 4] for i in range(4)])
    scores = M.r_precision(text, motion, top_k=3, pool_size=4)
    assert scores.r_precision == [0.0, 1.0, 1.0]
    own = np.linalg.norm(text - motion, axis=1).mean()
    assert scores.matching_score == pytest.approx(own)


def test_r_precision_pools_and_remainder() -> None:
    text = RNG.normal(size=(70, 5))
    scores = M.r_precision(text, text, pool_size=32, seed=0)
    assert (scores.n_pools, scores.pool_size) == (2, 32)
    assert scores.r_precision == [1.0, 1.0, 1.0]
    small = M.r_precision(text[:5], text[:5], pool_size=32)
    assert (small.n_pools, small.pool_size) == (1, 5)


# --------------------------------------------------------------------------- pose errors


def _pose(n: int = 22) -> np.ndarray:
    return RNG.normal(size=(n, 3))


def test_mpjpe_hand_value_and_mask() -> None:
    target = np.zeros((3, 3))
    pred = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    assert M.mpjpe(pred, target) == pytest.approx(2.0)  # (5 + 1 + 0) / 3
    assert M.mpjpe(pred, target, mask=np.array([False, True, True])) == pytest.approx(0.5)
    with pytest.raises(MotionDataError):
        M.mpjpe(pred, target, mask=np.zeros(3, bool))


def test_root_aligned_mpjpe_ignores_translation() -> None:
    p = _pose()
    assert M.root_aligned_mpjpe(p + np.array([1.0, 2.0, 3.0]), p) == pytest.approx(0.0, abs=1e-12)
    assert M.mpjpe(p + np.array([0.0, 0.3, 0.4]), p) == pytest.approx(0.5)


def test_pa_mpjpe_undoes_similarity_transform() -> None:
    target = _pose()
    R = Rotation.from_rotvec([0.3, -1.1, 0.7]).as_matrix()
    pred = 1.7 * target @ R.T + np.array([0.5, -2.0, 1.0])
    assert M.pa_mpjpe(pred, target) == pytest.approx(0.0, abs=1e-9)
    assert M.mpjpe(pred, target) > 0.5
    # batched, with a mask that excludes one corrupted joint from fit and error
    pred_b = np.stack([pred, pred])
    pred_b[1, 5] += 10.0
    mask = np.ones((2, 22), bool)
    mask[1, 5] = False
    assert M.pa_mpjpe(pred_b, np.stack([target, target]), mask) == pytest.approx(0.0, abs=1e-9)


def test_pa_mpjpe_never_reflects() -> None:
    target = _pose()
    mirrored = target * np.array([-1.0, 1.0, 1.0])
    # A reflection cannot be undone by a rotation: error stays clearly above zero.
    assert M.pa_mpjpe(mirrored, target) > 0.05


# --------------------------------------------------------------------------- control errors


def test_control_point_errors_respect_masks() -> None:
    T = 4
    target = np.zeros((T, 22, 3))
    pred = np.zeros((T, 22, 3))
    pred[:, 0] = [0.3, 5.0, 0.4]  # pelvis off by 0.5 m in xz and far off in y
    pred[:, 7] = 9.0  # an uncontrolled joint far away must not count
    mask = np.zeros((T, 22, 3), bool)
    mask[[0, 2], 0, 0] = True
    mask[[0, 2], 0, 2] = True  # ground-plane control of the pelvis at frames 0 and 2
    e = M.control_point_errors(pred, target, mask)
    np.testing.assert_allclose(e, [0.5, 0.5])
    # per-joint mask counts all three coordinates
    jm = np.zeros((T, 22), bool)
    jm[1, 0] = True
    np.testing.assert_allclose(M.control_point_errors(pred, target, jm), [np.sqrt(0.09 + 25 + 0.16)])


def test_control_errors_aggregate_as_omnicontrol() -> None:
    errs = [np.array([0.1, 0.3]), np.array([0.1, 0.1, 0.6]), np.array([0.05]), np.array([])]
    ce = M.aggregate_control_errors(errs, thresholds=(0.2, 0.5))
    assert ce.n_motions == 3 and ce.n_points == 6
    assert ce.traj_err[0.2] == pytest.approx(2 / 3)
    assert ce.traj_err[0.5] == pytest.approx(1 / 3)
    assert ce.loc_err[0.2] == pytest.approx(2 / 6)
    assert ce.loc_err[0.5] == pytest.approx(1 / 6)
    assert ce.avg_err == pytest.approx(1.25 / 6)


def test_control_errors_empty_is_nan() -> None:
    ce = M.aggregate_control_errors([np.array([])])
    assert np.isnan(ce.avg_err) and np.isnan(ce.loc_err[0.5])


# --------------------------------------------------------------------------- foot skating


def _feet_motion(T: int, height: float, step_m: float) -> np.ndarray:
    j = np.zeros((T, 22, 3))
    j[:, :, 1] = 1.0  # everything else well above the floor
    j[:, 10, 1] = height
    j[:, 11, 1] = 1.0
    j[:, 10, 0] = np.arange(T) * step_m
    return j


def test_foot_skating_sliding_contact_foot() -> None:
    # Left toe on the floor sliding 5 cm per frame (1 m/s at 20 fps) for all 20 frames: the 5-frame
    # zero-padded average drops to 3/5 m/s and 4/5 m/s at the two ends, still > 0.5 m/s.
    assert M.foot_skating_ratio(_feet_motion(20, 0.01, 0.05)) == pytest.approx(1.0)


def test_foot_skating_window_edges_hand_value() -> None:
    # 3 cm per frame = 0.6 m/s; the padded average at the first/last transition is 3/5*0.6 = 0.36
    # and at the second/second-to-last 4/5*0.6 = 0.48, both below 0.5: 4 of 19 transitions drop out.
    assert M.foot_skating_ratio(_feet_motion(20, 0.01, 0.03)) == pytest.approx(15 / 19)


def test_foot_skating_needs_contact_and_speed() -> None:
    assert M.foot_skating_ratio(_feet_motion(20, 0.10, 0.05)) == 0.0  # foot in the air
    assert M.foot_skating_ratio(_feet_motion(20, 0.01, 0.02)) == 0.0  # 0.4 m/s: planted enough
    j = _feet_motion(20, 0.01, 0.05)
    j[:, 10, 1] = np.where(np.arange(20) < 10, 0.01, 0.2)  # contact only in frames 0..9
    # transitions 0..8 are in contact (both ends below 5 cm); all are fast
    assert M.foot_skating_ratio(j) == pytest.approx(9 / 19)


# --------------------------------------------------------------------------- physical plausibility


def test_jerk_is_zero_for_constant_acceleration_and_known_for_a_cubic() -> None:
    t = np.arange(30) / 20.0
    j = np.zeros((30, 2, 3))
    j[:, :, 2] = (0.5 * 2.0 * t**2)[:, None]  # constant acceleration: no jerk
    assert M.mean_jerk(j, 20.0) == pytest.approx(0.0, abs=1e-9)
    j[:, :, 2] = (t**3)[:, None]  # x''' = 6 m/s³ everywhere
    assert M.mean_jerk(j, 20.0) == pytest.approx(6.0, rel=1e-9)
    assert np.isnan(M.mean_jerk(j[:3], 20.0))  # too short for a third difference


def test_real_skating_level_by_kind() -> None:
    """A motion whose pelvis averages more than 0.5 m/s is held to the real travelling clips' level, one
    in place (or swaying on the spot) to the all-clips level."""
    t = np.arange(21) / 20.0  # 1 s at 20 fps
    j = np.zeros((21, 3, 3))
    j[:, 0, 2] = 0.6 * t  # 0.6 m/s forward
    assert M.travels(j) and M.real_skating_level(j) == M.REAL_SKATING_TRAVELLING
    j[:, 0, 2] = 0.4 * t
    assert not M.travels(j) and M.real_skating_level(j) == M.REAL_SKATING
    j[:, 0, 2] = 0.3 - np.abs(0.6 * t - 0.3)  # 0.6 m/s out and back: ends where it started
    assert M.travels(j)  # the path length counts, not the displacement: a body pacing to and fro travels
    assert M.REAL_SKATING_TRAVELLING > M.REAL_SKATING
    with pytest.raises(MotionDataError):
        M.travels(np.zeros((1, 3, 3)))


def test_ground_penetration_and_floating_ratio() -> None:
    j = np.zeros((4, 3, 3))
    j[:, :, 1] = [[0.0, 0.5, 1.0], [-0.04, 0.5, 1.0], [0.2, 0.5, 1.0], [0.03, 0.5, 1.0]]  # lowest joint per frame
    assert M.ground_penetration(j) == pytest.approx(0.04 / 4)
    assert M.floating_ratio(j) == pytest.approx(1 / 4)  # only frame 2 has no joint within 5 cm of the floor
    with pytest.raises(MotionDataError):
        M.ground_penetration(np.full((2, 3, 3), np.nan))
