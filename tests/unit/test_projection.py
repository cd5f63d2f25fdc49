"""Exact constraint projection (motion_model/control/projection.py): constraints met, nothing else moved."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ikmo.motion_model.control.align import facing_yaw, rotate_y
from ikmo.motion_model.control.control_batch import ControlBatch
from ikmo.motion_model.control.guidance import MotionOptimizer, constraint_losses, measured_errors
from ikmo.motion_model.control.projection import blend_offsets, project, project_trajectory, segment_steps
from ikmo.motion_model.data.synthetic import synthetic_walk
from ikmo.motion_model.model_config import OptimizationConfig
from ikmo.motion_model.representation.features import feature_layout, features_to_pose_frames, joints_to_features

pytestmark = pytest.mark.unit
LAY = feature_layout()


@pytest.fixture(scope="module")
def turning_walk() -> torch.Tensor:
    """Raw features (1, 69, 263) of a synthetic walk that turns (the root yaw changes every frame)."""
    return torch.from_numpy(np.asarray(joints_to_features(synthetic_walk(70, 1.3, 0.6)), dtype=np.float64))[None]


def _control(joints: torch.Tensor, traj_frames: list[int], kf: dict[int, slice]) -> ControlBatch:
    """Waypoints off the walk's own path, and keyframe poses taken from other frames of the walk."""
    T = joints.shape[1]
    cb = ControlBatch.empty(1, T)
    cb.traj, cb.pose, cb.pose_weight = cb.traj.double(), cb.pose.double(), cb.pose_weight.double()
    f = torch.tensor(traj_frames)
    cb.traj[0, f] = joints[0, f, 0] + torch.tensor([0.4, 0.0, -0.3], dtype=torch.float64) * (f[:, None] / T)
    cb.traj_mask[0, f, 0] = cb.traj_mask[0, f, 2] = True
    for frame, joints_sel in kf.items():
        src = joints[0, (frame + 23) % T]
        cb.pose[0, frame] = rotate_y(src - src[:1], -facing_yaw(src))
        cb.pose_mask[0, frame, joints_sel] = True
        cb.pose_weight[0, frame, joints_sel] = 1.0
    return cb


def test_segment_steps_spread_residuals_evenly_between_anchors() -> None:
    resid = np.array([5.0, 0, 0, 0.3, 0, 0.1, 0])
    mask = np.array([True, False, False, True, False, True, False])  # frame 0 cannot be moved
    steps = segment_steps(resid, mask)
    np.testing.assert_allclose(steps, [0, 0.1, 0.1, 0.1, -0.1, -0.1, 0])
    np.testing.assert_allclose(np.cumsum(steps)[mask][1:], resid[mask][1:])


def test_blend_meets_every_keyframe_even_when_windows_overlap() -> None:
    T = 30
    offsets = np.zeros((T, 2, 3))
    mask = np.zeros((T, 2), dtype=bool)
    offsets[10, 0], offsets[13, 0], offsets[20, 1] = [1, 0, 0], [0, 2, 0], [0, 0, 3]
    mask[[10, 13], 0] = True
    mask[20, 1] = True
    out = blend_offsets(offsets, mask, half_width=6)
    np.testing.assert_allclose(out[mask], offsets[mask], atol=1e-6)
    assert np.all(out[:4] == 0) and np.all(out[27:] == 0)  # the window ends
    assert np.abs(np.diff(out, axis=0)).max() < 1.0  # no pop: spread over the window


@pytest.mark.parametrize("traj_frames", [list(range(70)), [10, 35, 69], [69]])
def test_trajectory_projection_is_exact_and_moves_only_velocity_channels(turning_walk, traj_frames) -> None:
    joints = features_to_pose_frames(turning_walk)
    cb = _control(joints, traj_frames, {})
    before = measured_errors(joints[0].numpy(), _signals(cb))["traj_err_max"]
    out = project_trajectory(turning_walk, cb, features_to_pose_frames)
    after = measured_errors(features_to_pose_frames(out)[0].numpy(), _signals(cb))
    assert before > 0.05
    assert after["traj_err_max"] < 1e-6
    changed = (out != turning_walk).any(dim=1)[0]
    allowed = torch.zeros(263, dtype=torch.bool)
    allowed[[1, 2]] = True
    allowed[LAY.local_vel.start:LAY.local_vel.start + 3] = True
    assert not bool(changed[~allowed].any())
    # Past the last waypoint the velocities are untouched.
    last = max(traj_frames)
    if last < 60:
        assert torch.equal(out[0, last + 1:], turning_walk[0, last + 1:])


def test_projection_meets_keyframes_including_the_last_frame_and_stays_smooth(turning_walk) -> None:
    joints = features_to_pose_frames(turning_walk)
    upper = slice(9, 22)
    cb = _control(joints, [0, 20, 40, 69], {15: slice(0, 22), 22: upper, 69: slice(0, 22)})
    errs_before = measured_errors(joints[0].numpy(), _signals(cb))
    out = project(turning_walk, cb, features_to_pose_frames, blend_frames=8)
    new = features_to_pose_frames(out)
    errs = measured_errors(new[0].numpy(), _signals(cb))
    assert errs_before["keyframe_mpjpe"] > 0.05
    # The upper-body keyframe moves the shoulders but not the hips, which turns the body's facing,
    # and Align follows the facing: one pass leaves millimetres there, and each pass shrinks them.
    assert errs["keyframe_mpjpe_max"] < 5e-3
    assert errs["traj_err_max"] < 1e-5
    again = measured_errors(features_to_pose_frames(project(out, cb, features_to_pose_frames))[0].numpy(),
                            _signals(cb))
    assert again["keyframe_mpjpe_max"] < 0.7 * errs["keyframe_mpjpe_max"]
    full = _control(joints, [0, 20, 40, 69], {15: slice(0, 22), 69: slice(0, 22)})
    exact = features_to_pose_frames(project(turning_walk, full, features_to_pose_frames))
    l_traj, l_pose = constraint_losses(exact, full)
    assert float(l_traj) < 1e-10 and float(l_pose) < 1e-10
    # Unmasked joints of the upper-body keyframe keep their pose relative to the pelvis
    # (outside the windows of the full-body keyframes at 15 and 69).
    rel_old = joints[0, 30:60] - joints[0, 30:60, :1]
    rel_new = new[0, 30:60] - new[0, 30:60, :1]
    torch.testing.assert_close(rel_new, rel_old, atol=1e-9, rtol=0)
    # Continuity: the largest per-frame joint jump grows by less than the blended offset / window.
    jump = lambda j: (j[1:] - j[:-1]).norm(dim=-1).max()  # noqa: E731
    assert float(jump(new[0])) < float(jump(joints[0])) + errs_before["keyframe_mpjpe_max"] / 4


def test_optimizer_projects_each_motion_of_a_padded_batch_at_its_own_length(turning_walk) -> None:
    feats = torch.cat([turning_walk, turning_walk.clone()])
    feats[1, 50:] = 0.0  # motion 1 is 51 frames long: 50 rows then padding
    lengths = [70, 51]
    cb = ControlBatch.empty(2, 70)
    cb.traj, cb.pose, cb.pose_weight = cb.traj.double(), cb.pose.double(), cb.pose_weight.double()
    for b, T in enumerate(lengths):
        j = features_to_pose_frames(feats[b:b + 1, :T - 1])
        one = _control(j, [0, T // 2, T - 1], {T - 1: slice(0, 22)})
        for dst, src in zip(cb.tensors(), one.tensors(), strict=True):
            dst[b, :T] = src[0]
    opt = MotionOptimizer(cb, OptimizationConfig(iterations=0, final_iterations=0), lambda x: x,
                          features_to_pose_frames, normalize=lambda x: x, lengths=lengths)
    out = opt(feats, 3, 4)
    for b, T in enumerate(lengths):
        errs = measured_errors(features_to_pose_frames(out[b:b + 1, :T - 1])[0].numpy(), _signals(cb.select(b, T)))
        assert errs["traj_err_max"] < 1e-5 and errs["keyframe_mpjpe_max"] < 1e-5
    assert torch.equal(out[1, 50:], feats[1, 50:])  # padding untouched


def _signals(cb: ControlBatch):
    from ikmo.motion_model.constraints import ControlSignals

    return ControlSignals(*(t[0] for t in cb.tensors()))


def test_pose_frames_of_a_padded_batch_end_at_each_motions_own_last_row(turning_walk) -> None:
    """R(·) with n_rows: a short motion's last pose frame comes from its own last row, exactly as
    when it is decoded alone; without n_rows it came from the padding (the bug this guards)."""
    feats = torch.cat([turning_walk, turning_walk.clone()])
    feats[1, 50:] = torch.randn(19, 263, dtype=torch.float64)  # motion 1: 50 rows, then junk padding
    alone = features_to_pose_frames(feats[1:2, :50])[0]  # (51, 22, 3)
    batched = features_to_pose_frames(feats, n_rows=torch.tensor([69, 50]))
    assert batched.shape == (2, 70, 22, 3)
    torch.testing.assert_close(batched[1, :51], alone, atol=1e-12, rtol=0)
    torch.testing.assert_close(batched[0], features_to_pose_frames(turning_walk)[0], atol=0, rtol=0)
    unaware = features_to_pose_frames(feats)
    assert float((unaware[1, 50] - alone[50]).norm(dim=-1).max()) > 1e-3  # what the padding made of it
    x = feats.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(features_to_pose_frames(x, n_rows=torch.tensor([69, 50]))[1, 50].sum(), x)
    assert float(g[1, 50:].abs().sum()) == 0.0 and float(g[1, :50].abs().sum()) > 0  # no gradient into padding


def test_stage1_loss_of_a_short_motion_is_its_loss_alone(turning_walk) -> None:
    """A keyframe on the last frame of the shorter motion of a batch is measured on that motion's
    own last frame: the batched loss equals the loss of the motion optimised alone."""
    feats = torch.cat([turning_walk, turning_walk.clone()])
    feats[1, 50:] = 0.0
    lengths = [70, 51]
    cb = ControlBatch.empty(2, 70)
    cb.traj, cb.pose, cb.pose_weight = cb.traj.double(), cb.pose.double(), cb.pose_weight.double()
    alone_cbs = []
    for b, T in enumerate(lengths):
        j = features_to_pose_frames(feats[b:b + 1, :T - 1])
        one = _control(j, [0, T // 2], {T - 1: slice(0, 22)})
        alone_cbs.append(one)
        for dst, src in zip(cb.tensors(), one.tensors(), strict=True):
            dst[b, :T] = src[0]
    cfg = OptimizationConfig()
    batched = MotionOptimizer(cb, cfg, lambda x: x, features_to_pose_frames, lengths=lengths).loss(feats)
    alone = MotionOptimizer(alone_cbs[1], cfg, lambda x: x, features_to_pose_frames).loss(feats[1:2, :50])
    torch.testing.assert_close(batched[1], alone[0], atol=1e-10, rtol=0)


def test_heading_projection_turns_the_body_onto_its_path(turning_walk) -> None:
    """A target facing that turns a quarter more than the walk does: after the projection the body's
    smoothed facing meets it at every anchor, the trajectory is still met exactly, and only the yaw
    and velocity channels moved (the body's own pose is untouched)."""
    from ikmo.motion_model.control.projection import HEADING_ANCHOR_EVERY, project_heading, smoothed_facing

    joints = features_to_pose_frames(turning_walk)
    T = joints.shape[1]
    cb = _control(joints, list(range(T)), {})
    own = smoothed_facing(joints[0].numpy())
    cb.heading[0] = torch.as_tensor(own + np.linspace(0.0, np.pi / 2, T), dtype=cb.heading.dtype)
    cb.heading_mask[0, 5:] = True
    turned = project_heading(turning_walk, cb, features_to_pose_frames)
    after = smoothed_facing(features_to_pose_frames(turned)[0].numpy())
    anchors = np.arange(5, T - 1, HEADING_ANCHOR_EVERY)
    err = np.degrees(np.abs(after[anchors] - cb.heading[0, anchors].numpy()))
    assert err.max() < 2.0, err  # was up to 90°
    assert np.degrees(np.abs(own[anchors] - cb.heading[0, anchors].numpy())).max() > 60
    changed = (turned != turning_walk).any(dim=1)[0]
    assert bool(changed[0]) and not bool(changed[1:].any())  # the heading step turns the yaw only
    full = project(turning_walk, cb, features_to_pose_frames)
    errs = measured_errors(features_to_pose_frames(full)[0].numpy(), _signals(cb))
    assert errs["traj_err_max"] < 1e-5  # the path is still met with the new yaw


def test_no_heading_leaves_the_yaw_alone(turning_walk) -> None:
    from ikmo.motion_model.control.projection import project_heading

    joints = features_to_pose_frames(turning_walk)
    cb = _control(joints, [10, 35], {})
    assert project_heading(turning_walk, cb, features_to_pose_frames) is turning_walk
