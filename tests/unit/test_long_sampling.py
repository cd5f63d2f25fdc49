"""Window planning, the hand-over's cross-fade and the seam measure of long motions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ikmo.motion_model.constraints import ControlSignals, TimedText
from ikmo.motion_model.control.align import facing_yaw, rotate_y
from ikmo.motion_model.data.synthetic import synthetic_walk
from ikmo.motion_model.errors import ConstraintError
from ikmo.motion_model.long_sampling import (
    HOLD_FRAMES,
    OVERLAP_FRAMES,
    Window,
    cross_fade,
    plan_windows,
    seam_frames,
    window_control,
    window_texts,
)
from ikmo.motion_model.motion_metrics import seam_velocity_jump


@pytest.mark.parametrize("n", [2, 197, 198, 600, 1200, 2400])
def test_windows_cover_the_motion_with_fixed_overlaps(n: int) -> None:
    ws = plan_windows(n, 197)
    assert ws[0].start == 0 and ws[-1].end == n and all(w.n_frames <= 197 for w in ws)
    for prev, w in zip(ws, ws[1:], strict=False):
        assert prev.end - w.start == OVERLAP_FRAMES and w.held == HOLD_FRAMES and w.held + w.fade == OVERLAP_FRAMES
        assert w.n_frames > OVERLAP_FRAMES  # every window adds frames of its own
    assert len(ws) == (1 if n <= 197 else int(np.ceil((n - OVERLAP_FRAMES) / (197 - OVERLAP_FRAMES))))
    with pytest.raises(ConstraintError, match="hold"):
        plan_windows(400, 197, overlap=10, hold=20)
    with pytest.raises(ConstraintError, match="continue one of 40 to 399 frames, not 30"):
        plan_windows(400, 197, given=30)


def test_timed_texts_are_cut_per_window() -> None:
    w = Window(157, 354, HOLD_FRAMES, OVERLAP_FRAMES - HOLD_FRAMES)
    tts = [TimedText(text="a person walks", start=0, end=200), TimedText(text="a person waves", start=200, end=260),
           TimedText(text="a person bows", start=400, end=450)]
    assert [(t.text, t.start, t.end) for t in window_texts(tts, w)] == [
        ("a person walks", 0, 43), ("a person waves", 43, 103)]


def test_held_frames_become_constraints_in_the_windows_own_frame() -> None:
    walk = torch.as_tensor(synthetic_walk(60, 1.0, 0.0), dtype=torch.float64)
    # The walk turned 90° to the left and moved: the held frames start at its frame 30.
    yaw = torch.tensor(np.pi / 2)
    c, s = torch.cos(yaw), torch.sin(yaw)
    world = torch.stack([c * walk[..., 0] + s * walk[..., 2], walk[..., 1], -s * walk[..., 0] + c * walk[..., 2]], -1)
    world = world + torch.tensor([3.0, 0.0, -2.0], dtype=torch.float64)
    held = world[30:50]
    origin = torch.tensor([float(held[0, 0, 0]), 0.0, float(held[0, 0, 2])])
    w = Window(100, 297, held=20, fade=20)
    wc = window_control(None, w, held, origin, float(facing_yaw(held[0])))
    assert isinstance(wc, ControlSignals) and wc.n_frames == 197
    # The window starts at the origin facing +Z, the pelvis held (floor plane, not its height: that
    # drifted down window after window) at every held frame and no later.
    assert torch.allclose(wc.traj[0, [0, 2]], torch.zeros(2), atol=1e-5)
    assert bool(wc.traj_mask[:20, [0, 2]].all()) and not bool(wc.traj_mask[:, 1].any())
    assert not bool(wc.traj_mask[20:].any())
    assert abs(float(wc.heading[0])) < 0.2 and bool(wc.heading_mask[:20].all())
    assert wc.pose_mask.any(-1).nonzero().flatten().tolist() == [4, 9, 14, 19]
    # Forward in the window's frame is the walk's own forward, along +Z up to the stride's hip sway at
    # frame 0 (the frame is the body's facing there, as HumanML3D canonicalises a clip's first frame).
    step = wc.traj[19] - wc.traj[0]
    assert float(step[2]) > 0.5 and abs(float(step[0])) < 0.25 * float(step[2])


def test_cross_fade_goes_from_the_previous_frames_to_the_new_ones() -> None:
    a, b = np.zeros((20, 22, 3)), np.ones((20, 22, 3))
    mix = cross_fade(a, b)[:, 0, 0]
    assert 0 < mix[0] < 0.05 and 0.95 < mix[-1] < 1 and np.all(np.diff(mix) > 0)


def test_cross_fade_keeps_the_body_whole_between_windows_that_face_apart() -> None:
    """Two windows striking the same pose 160° apart: every faded frame is that pose, turned part way."""
    walk = synthetic_walk(40, 1.0, 0.0)
    pose = torch.as_tensor(walk[20] - walk[20, :1])
    canon = rotate_y(pose, -facing_yaw(pose))
    previous = np.repeat(canon.numpy()[None], 20, axis=0)
    new = rotate_y(torch.as_tensor(previous), torch.full((20,), math.radians(160.0))).numpy() + [0.5, 0.0, 0.0]
    mix = torch.as_tensor(cross_fade(previous, new))
    yaw = facing_yaw(mix)
    assert np.all(np.diff(yaw.numpy()) > 0) and math.degrees(float(yaw[-1])) < 160.0  # the shorter way round
    back = rotate_y(mix - mix[:, :1], -yaw)
    torch.testing.assert_close(back, canon.double().expand_as(back), atol=1e-6, rtol=0)  # not shrunk: the same pose
    assert np.all(np.diff(mix[:, 0, 0].numpy()) > 0)  # the pelvis moves over to the new window's


def test_seam_velocity_jump_sees_a_seam_and_not_a_smooth_motion() -> None:
    walk = synthetic_walk(200, 1.0, 0.0)
    smooth = seam_velocity_jump(walk, [100])
    assert smooth["ratio"] == pytest.approx(1.0, abs=0.5)
    broken = walk.copy()
    broken[100:] += np.array([0.2, 0.0, 0.0])  # a 20 cm pop: what an unblended hand-over looks like
    jump = seam_velocity_jump(broken, [100])
    assert jump["ratio"] > 2.5 * smooth["ratio"] and jump["seam_max"] > 4.0  # 0.2 m in one frame: 4 m/s
    assert np.isnan(seam_velocity_jump(walk, [])["ratio"])
    assert seam_frames(plan_windows(400, 197)) == [177, 197, 334, 354]
    assert seam_frames(plan_windows(300, 197, given=200)) == [180, 200]  # from the motion it continues
    assert [(w.start, w.end) for w in plan_windows(300, 197, given=100)] == [(60, 257), (217, 300)]
