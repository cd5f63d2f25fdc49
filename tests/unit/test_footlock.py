"""Foot locking (motion_model/control/footlock.py): skating removed, bones and pelvis kept, keyframes kept."""

from __future__ import annotations

import numpy as np
import pytest

from ikmo.motion_model.control.footlock import LEGS, contact_locks, lock_feet, two_bone_ik
from ikmo.motion_model.model_config import FootLockConfig
from ikmo.motion_model.motion_metrics import foot_skating_ratio

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def real_walk(hml3d_fixture_dir) -> np.ndarray:
    """HumanML3D clip 012314 (170 frames of real mocap joints)."""
    return np.load(hml3d_fixture_dir / "new_joints" / "012314.npy").astype(np.float64)


@pytest.fixture(scope="module")
def sliding_walk(real_walk) -> np.ndarray:
    """The real clip with every planted foot sliding away at 0.6 m/s while it is down."""
    j = real_walk.copy()
    for _, _, ankle, toe in LEGS:
        planted = j[:, toe, 1] < 0.06
        run = np.zeros(len(j))
        for t in range(1, len(j)):
            run[t] = run[t - 1] + 1 if planted[t] and planted[t - 1] else 0
        for k in (ankle, toe):
            j[:, k, 0] += run * 0.03 * 0.6
            j[:, k, 2] += run * 0.03 * 0.8
    return j


def test_locks_reduce_the_skating_of_real_mocap(real_walk) -> None:
    before = foot_skating_ratio(real_walk)
    after = foot_skating_ratio(lock_feet(real_walk, FootLockConfig()))
    assert before > 0.1  # this clip's own feet slip (measured 0.136)
    assert after < 0.5 * before  # measured 0.047


def _bone(j: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.linalg.norm(j[:, a] - j[:, b], axis=-1)


def test_locks_remove_skating_and_keep_bones_and_pelvis(sliding_walk) -> None:
    before = foot_skating_ratio(sliding_walk)
    out = lock_feet(sliding_walk, FootLockConfig())
    after = foot_skating_ratio(out)
    assert before > 0.8  # measured 0.92
    assert after < 0.25 * before  # measured 0.16 (locks split where the slide passes max_drift)
    for hip, knee, ankle, toe in LEGS:
        np.testing.assert_allclose(_bone(out, hip, knee), _bone(sliding_walk, hip, knee), atol=1e-6)
        np.testing.assert_allclose(_bone(out, knee, ankle), _bone(sliding_walk, knee, ankle), atol=1e-6)
        np.testing.assert_allclose(out[:, toe] - out[:, ankle], sliding_walk[:, toe] - sliding_walk[:, ankle],
                                   atol=1e-9)
    upper = [0, 3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]
    np.testing.assert_array_equal(out[:, upper], sliding_walk[:, upper])
    # Inside a lock the toe does not move in the ground plane.
    toe = LEGS[0][3]
    locks = [(s, e) for s, e in contact_locks(out[:, toe], out[:, toe, 1] < 0.06, 0.25) if e - s >= 3]
    assert locks
    s, e = locks[0]
    assert np.ptp(out[s:e + 1, toe][:, [0, 2]], axis=0).max() < 1e-6


def test_a_pinned_keyframe_foot_anchors_its_lock(sliding_walk) -> None:
    toe, ankle, knee = LEGS[1][3], LEGS[1][2], LEGS[1][1]
    contact = sliding_walk[:, toe, 1] < 0.06
    s, e = next((s, e) for s, e in contact_locks(sliding_walk[:, toe], contact, 0.25) if e - s >= 4)
    f = e - 1
    pinned = np.zeros(sliding_walk.shape[:2], dtype=bool)
    pinned[f, :] = True
    out = lock_feet(sliding_walk, FootLockConfig(), pinned)
    for k in (toe, ankle, knee):
        np.testing.assert_allclose(out[f, k], sliding_walk[f, k], atol=1e-6)
    free = lock_feet(sliding_walk, FootLockConfig())
    assert np.linalg.norm(free[f, toe] - sliding_walk[f, toe]) > 0.01  # without the pin it would move


def test_two_bone_ik_reaches_or_stops_at_full_reach() -> None:
    hip = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    knee = np.array([[0.0, 0.55, 0.1], [0.0, 0.55, 0.1]])
    ankle = np.array([[0.0, 0.1, 0.0], [0.0, 0.1, 0.0]])
    target = np.array([[0.2, 0.15, 0.1], [0.0, 1.0, 2.0]])  # reachable; far out of reach
    new_knee, new_ankle = two_bone_ik(hip, knee, ankle, target)
    np.testing.assert_allclose(new_ankle[0], target[0], atol=1e-9)
    thigh, shin = np.linalg.norm(knee - hip, axis=-1), np.linalg.norm(ankle - knee, axis=-1)
    np.testing.assert_allclose(np.linalg.norm(new_knee - hip, axis=-1), thigh, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(new_ankle - new_knee, axis=-1), shin, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(new_ankle[1] - hip[1]), thigh[1] + shin[1] - 1e-4, atol=1e-9)
    assert new_knee[0, 2] > 0  # bends the way the original knee did (forward, +z)


@pytest.fixture(scope="module")
def gliding_body() -> np.ndarray:
    """A standing body dragged forward at 1.5 m/s with both feet on the floor: it never steps (what
    the sampler gives where the path outruns the gait), and the left toe's height flickers across
    the contact height from frame to frame."""
    from ikmo.motion_model.data.synthetic import synthetic_walk

    pose = synthetic_walk(40, 0.0, 0.0)[0]  # a frame with both toes on the floor
    j = np.repeat(pose[None], 60, axis=0).astype(np.float64)
    j[..., 1] -= j[:, [10, 11], 1].min()  # toes on the floor
    j[..., 2] += (np.arange(60) * 1.5 / 20)[:, None]
    _, _, ankle, toe = LEGS[0]
    flicker = np.where(np.arange(60) % 3 == 2, 0.07, 0.0)  # every third frame just above contact height
    j[:, [ankle, toe], 1] += flicker[:, None]
    return j


def test_a_dragged_body_steps_from_anchor_to_anchor_instead_of_jumping(gliding_body) -> None:
    old = lock_feet(gliding_body, FootLockConfig(step_frames=0, gap_frames=0))
    new = lock_feet(gliding_body, FootLockConfig())
    assert foot_skating_ratio(gliding_body) > 0.9
    for _, _, _, toe in LEGS:
        speed = np.linalg.norm(np.diff(new[:, toe, [0, 2]], axis=0), axis=-1) * 20
        old_speed = np.linalg.norm(np.diff(old[:, toe, [0, 2]], axis=0), axis=-1) * 20
        # The feet keep up with the body (carried along, not left behind) ...
        assert new[-1, toe, 2] - new[0, toe, 2] > 0.8 * (gliding_body[-1, toe, 2] - gliding_body[0, toe, 2])
        # ... in steps no faster than a real swing foot (the old lock slid or jumped them, up to 5 m/s).
        assert old_speed.max() >= 1.5 and speed.max() < 4.0
        # A foot that moves is off the floor: it swings, it does not slide.
        moving = speed > 0.5
        assert moving.any() and np.all(np.maximum(new[:-1, toe, 1], new[1:, toe, 1])[moving] >= 0.05)
    assert foot_skating_ratio(new) < 0.1 < 0.2 < foot_skating_ratio(old)
    for hip, knee, ankle, _ in LEGS:  # the legs keep their bones, the pelvis its path
        np.testing.assert_allclose(_bone(new, hip, knee), _bone(gliding_body, hip, knee), atol=1e-6)
        np.testing.assert_allclose(_bone(new, knee, ankle), _bone(gliding_body, knee, ankle), atol=1e-6)
    np.testing.assert_array_equal(new[:, 0], gliding_body[:, 0])


def test_close_gaps_fills_short_gaps_only() -> None:
    from ikmo.motion_model.control.footlock import close_gaps

    c = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0], dtype=bool)
    np.testing.assert_array_equal(close_gaps(c, 2), [1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(close_gaps(c, 0), c)
