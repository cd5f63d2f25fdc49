"""Key poses from words (agents/gesture_poses.py): the arms' pose of a gesture the text asks for."""

from __future__ import annotations

import numpy as np
import pytest

from ikmo.agents import gesture_poses as gp
from ikmo.agents import offline_planner
from ikmo.agents.offline_parser import parse_request
from ikmo.motion_model.representation.skeleton import HUMANML3D_22

pytestmark = pytest.mark.unit
HEAD, L_WRIST, R_WRIST = 15, 20, 21


def test_the_mean_pose_is_the_bundled_corpus_mean() -> None:
    from safetensors.numpy import load_file

    from ikmo.motion_model.model.bundled import weights_dir
    from ikmo.motion_model.representation.features import feature_layout

    mean = load_file(str(weights_dir(None) / "model.safetensors"))["mean"]
    ric = mean[feature_layout().ric].reshape(21, 3) - np.array([0.0, mean[3], 0.0])
    np.testing.assert_allclose(gp.standing_pose()[1:], ric, atol=1e-3)


def test_raised_hands_are_above_the_head_with_the_bone_lengths_kept() -> None:
    kf = gp.key_pose("raise-up-both-hands", 1.0)
    assert kf is not None and kf.source == "words:raise-up-both-hands"
    j = kf.joints_array()
    head = gp.standing_pose()[HEAD]
    assert j[L_WRIST, 1] > head[1] + 0.2 and j[R_WRIST, 1] > head[1] + 0.2
    assert j[L_WRIST, 0] > 0 > j[R_WRIST, 0]  # left is +X
    for child in (18, 19, 20, 21):
        parent = HUMANML3D_22.parents[child]
        assert np.linalg.norm(j[child] - j[parent]) == pytest.approx(HUMANML3D_22.bone_lengths[child], abs=1e-5)
    assert [i for i, m in enumerate(kf.joint_mask) if m] == [18, 19, 20, 21]  # only the arms are held
    one = gp.key_pose("wave-right-hand", 0.5)
    assert one is not None and [i for i, m in enumerate(one.joint_mask) if m] == [19, 21]
    assert gp.key_pose("walk", 0.5) is None


def test_gestures_of_a_request_become_timed_key_poses_and_photos_win() -> None:
    req = parse_request("stand still and raise both hands above the head")
    desc = offline_planner.describe(req)
    (kf,) = gp.gesture_keyframes(desc, req)
    seg = desc.segments[1]
    assert kf.time_s == pytest.approx(seg.start_s + 0.8 * (seg.end_s - seg.start_s))
    assert gp.gesture_keyframes(desc, req, photo_times=[kf.time_s + 0.1]) == []  # a photo there: its pose wins
    zig = parse_request("zigzag forward 4 meters while waving both hands")
    kfs = gp.gesture_keyframes(offline_planner.describe(zig), zig)
    assert [k.source for k in kfs] == ["words:wave-both-hands"] * 2  # the wave done during the walk
    walk = parse_request("walk forward 3 meters")
    assert gp.gesture_keyframes(offline_planner.describe(walk), walk) == []
