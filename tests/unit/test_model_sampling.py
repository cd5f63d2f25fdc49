"""Sampling API, diffusion, stage-1 motion optimization and spec validation of the generate tool."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ikmo.motion_model.constraints import ControlSignals, KeyframePose, MotionDescription, MotionSpec, Trajectory
from ikmo.motion_model.control.align import align_keyframes, facing_yaw, rotate_y
from ikmo.motion_model.control.control_batch import ControlBatch
from ikmo.motion_model.control.guidance import (
    FOOT_SPEED_TOLERANCE_M_S,
    HEADING_TOLERANCE_DEG,
    MotionOptimizer,
    constraint_losses,
    foot_contact_loss,
    heading_loss,
    measured_errors,
)
from ikmo.motion_model.data.synthetic import synthetic_walk
from ikmo.motion_model.errors import ConstraintError
from ikmo.motion_model.model.diffusion import GaussianDiffusion, cosine_alphas_cumprod
from ikmo.motion_model.model_config import (
    ControlConfig,
    DenoiserConfig,
    DiffusionConfig,
    ModelConfig,
    OptimizationConfig,
)
from ikmo.motion_model.representation.features import (
    Normalizer,
    feature_layout,
    features_to_pose_frames,
    joints_to_features,
)
from ikmo.motion_model.sampling import build_model, sample
from ikmo.tools.toolbox import ToolSettings

pytestmark = pytest.mark.unit

TINY = ModelConfig(denoiser=DenoiserConfig(d_model=32, n_layers=2, n_heads=2, ff_dim=64, text_dim=16),
                   control=ControlConfig(hidden=16), text_encoder="hash:16")


@pytest.fixture(scope="module")
def walk() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw features (1, 59, 263) of a synthetic walk, and a normaliser fitted on it (mean, std)."""
    joints = synthetic_walk(60, 1.2, 0.3)
    f = np.asarray(joints_to_features(joints), dtype=np.float32)
    norm = Normalizer.fit(f)
    return torch.from_numpy(f)[None], torch.from_numpy(norm.mean), torch.from_numpy(norm.std)


@pytest.fixture(scope="module")
def tiny_model(walk):
    _, mean, std = walk
    return build_model(TINY, DiffusionConfig(sample_steps=4), seed=0, mean=mean, std=std)


def test_quadratic_step_spacing_puts_more_steps_at_high_noise() -> None:
    linear = GaussianDiffusion(DiffusionConfig()).timesteps(10)
    quad = GaussianDiffusion(DiffusionConfig(step_spacing="quadratic")).timesteps(10)
    assert linear == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]  # the default, as before the option
    assert quad[0] == 999 and quad[-1] == 0 and len(quad) == 10 and quad == sorted(quad, reverse=True)
    assert sum(t > 500 for t in quad) == 7 and sum(t > 500 for t in linear) == 5
    assert quad == [round(999 * (1 - (i / 9) ** 2)) for i in range(10)]


def test_guidance_interval_skips_the_unconditional_pass_outside_it(tiny_model) -> None:
    """CFG only on the steps inside [guidance_min_t, guidance_max_t]: an interval holding no step is the
    conditional sampler (scale 1), one holding every step is plain CFG, and the steps outside it run
    the network once per motion instead of twice."""
    net, cfg = tiny_model.net, tiny_model.diffusion.cfg.model_copy(update={"sample_steps": 4})
    B, L = 2, 12
    valid = torch.ones(B, L, dtype=torch.bool)
    text = torch.randn(B, 16, generator=torch.Generator().manual_seed(1))
    rows: list[int] = []
    hook = net.register_forward_pre_hook(lambda _m, args: rows.append(int(args[0].shape[0])))
    try:
        def run(scale: float, **interval: int | None) -> torch.Tensor:
            diff = GaussianDiffusion(cfg.model_copy(update=interval))
            return diff.ddim_sample(net, (B, L, TINY.denoiser.feature_dim), valid, text,
                                    torch.Generator().manual_seed(0), steps=4, guidance_scale=scale)

        plain_cfg, conditional = run(2.5, guidance_max_t=None), run(1.0)
        rows.clear()
        assert torch.allclose(run(2.5, guidance_min_t=0, guidance_max_t=999), plain_cfg)
        assert rows == [2 * B] * 4
        rows.clear()
        assert torch.allclose(run(2.5, guidance_min_t=1000, guidance_max_t=None), conditional, atol=1e-6)
        assert rows == [B] * 4
        rows.clear()
        first_step_unguided = run(2.5)  # the default: steps 999, 666, 333, 0, the first unguided
        assert rows == [B, 2 * B, 2 * B, 2 * B]
        assert not torch.allclose(first_step_unguided, plain_cfg)
        assert not torch.allclose(first_step_unguided, conditional)
    finally:
        hook.remove()
    assert GaussianDiffusion(DiffusionConfig(guidance_max_t=0)).guided_at(0)
    assert not GaussianDiffusion(DiffusionConfig(guidance_max_t=0)).guided_at(1)
    with pytest.raises(ValueError, match="guidance interval is empty"):
        DiffusionConfig(guidance_min_t=500, guidance_max_t=100)


def _traj_control(T: int, every: int = 10) -> ControlSignals:
    traj = torch.zeros(T, 3)
    traj[:, 2] = torch.linspace(0, 2, T)
    tm = torch.zeros(T, 3, dtype=torch.bool)
    tm[::every, 0] = tm[::every, 2] = True
    return ControlSignals(traj, tm, torch.zeros(T, 22, 3), torch.zeros(T, 22, dtype=torch.bool), torch.zeros(T, 22))


def test_cosine_schedule_monotone() -> None:
    ab = cosine_alphas_cumprod(1000)
    assert ab.shape == (1000,) and bool((ab[1:] < ab[:-1]).all()) and 0 < float(ab[-1]) < 1e-3 < float(ab[0])
    ts = GaussianDiffusion(DiffusionConfig()).timesteps(10)
    assert ts[0] == 999 and ts[-1] == 0 and len(ts) == 10


def test_pose_frames_recover_last_frame(hml3d_fixture_dir) -> None:
    feats = np.load(next((hml3d_fixture_dir / "new_joint_vecs").glob("*.npy")))
    joints = np.load(next((hml3d_fixture_dir / "new_joints").glob("*.npy")))
    # new_joints holds one pose per feature row; dropping the last row, its pose must be recovered.
    rec = features_to_pose_frames(torch.from_numpy(feats[:-1]).double()).numpy()
    assert rec.shape == joints.shape
    np.testing.assert_allclose(rec, joints, atol=1e-4)


def test_sample_shapes_determinism_and_progress(tiny_model) -> None:
    steps: list[tuple[int, int]] = []
    a = sample(tiny_model, ["a person walks", "a person jumps"], [30, 17], [_traj_control(30), None], seed=3,
               on_step=lambda i, n: steps.append((i, n)))
    b = sample(tiny_model, ["a person walks", "a person jumps"], [30, 17], [_traj_control(30), None], seed=3)
    c = sample(tiny_model, ["a person walks", "a person jumps"], [30, 17], [_traj_control(30), None], seed=4)
    assert a[0].features.shape == (29, 263) and a[0].joints.shape == (30, 22, 3)
    assert a[1].features.shape == (16, 263) and a[1].joints.shape == (17, 22, 3)
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    for m1, m2 in zip(a, b, strict=True):
        np.testing.assert_array_equal(m1.joints, m2.joints)
    assert not np.allclose(a[0].joints, c[0].joints)
    assert np.isfinite(a[0].joints).all()
    assert len(a[0].optimization_loss) > 1  # stage 1 ran: the batch has constraints
    free = sample(tiny_model, ["a person walks"], [20], [None], seed=3)
    assert free[0].optimization_loss == []  # and it never runs without any


def test_sample_rejects_bad_inputs(tiny_model) -> None:
    with pytest.raises(ConstraintError):
        sample(tiny_model, ["x"], [1])
    with pytest.raises(ConstraintError):
        sample(tiny_model, ["x", "y"], [20])
    with pytest.raises(ConstraintError):
        sample(tiny_model, ["x"], [20], [_traj_control(25)])


def test_optimization_reduces_trajectory_and_pose_loss(walk) -> None:
    feats, mean, std = walk
    joints = features_to_pose_frames(feats)
    T = joints.shape[1]
    cb = ControlBatch.empty(1, T)
    frames = torch.tensor([5, 25, 45, 59])
    cb.traj[0, frames] = joints[0, frames, 0] + torch.tensor([0.3, 0.0, -0.2])
    cb.traj_mask[0, frames, 0] = cb.traj_mask[0, frames, 2] = True
    other = joints[0, 50] - joints[0, 50, :1]
    cb.pose[0, 20] = rotate_y(other, -facing_yaw(joints[0, 50]))
    cb.pose_mask[0, 20, :12] = True
    cb.pose_weight[0, 20, :12] = 1.0
    opt = MotionOptimizer(cb, OptimizationConfig(), lambda x: x * std + mean, features_to_pose_frames)
    x0 = (feats - mean) / std
    x = opt.optimize(x0, 15)
    before = constraint_losses(features_to_pose_frames(feats), cb)
    after = constraint_losses(features_to_pose_frames(x * std + mean), cb)
    assert float(after[0]) < 0.5 * float(before[0])
    assert float(after[1]) < 0.5 * float(before[1])
    assert opt.history[-1] <= opt.history[0]


def test_lbfgs_meets_a_dense_path_that_plain_steps_crawl_towards(walk) -> None:
    """A dense path (every frame) bent 0.4 m sideways: the pelvis is an integral of the root
    velocities, so plain clipped steps crawl along the valley; L-BFGS crosses it on the same budget."""
    feats, mean, std = walk
    joints = features_to_pose_frames(feats)
    T = joints.shape[1]
    cb = ControlBatch.empty(1, T)
    bend = 0.4 * torch.sin(torch.linspace(0, math.pi, T))
    cb.traj[0, :, 0] = joints[0, :, 0, 0] + bend
    cb.traj[0, :, 2] = joints[0, :, 0, 2]
    cb.traj_mask[0, :, 0] = cb.traj_mask[0, :, 2] = True
    x0 = (feats - mean) / std
    errs = {}
    for name in ("gd", "lbfgs"):
        cfg = OptimizationConfig(optimizer=name)
        opt = MotionOptimizer(cb, cfg, lambda x: x * std + mean, features_to_pose_frames)
        x = opt.optimize(x0, 100)
        errs[name] = float(constraint_losses(features_to_pose_frames(x * std + mean), cb)[0]) ** 0.5
        assert opt.history[-1] <= opt.history[0]
    assert errs["lbfgs"] < 0.01, errs  # metres, root mean square over the path
    assert errs["lbfgs"] < 0.2 * errs["gd"], errs


def test_optimization_settings_from_the_command_line_are_validated() -> None:
    cfg = OptimizationConfig().with_settings(["w_foot=0", " optimizer = lbfgs", "projection=false"])
    assert cfg.w_foot == 0.0 and cfg.optimizer == "lbfgs" and cfg.projection is False
    assert OptimizationConfig().with_settings([]) == OptimizationConfig()
    from ikmo.motion_model.errors import ConfigError

    with pytest.raises(ConfigError, match="w_foot"):  # an unknown field: the message lists the real ones
        OptimizationConfig().with_settings(["foot=1"])
    with pytest.raises(ConfigError, match="FIELD=VALUE"):
        OptimizationConfig().with_settings(["w_foot"])
    with pytest.raises(ConfigError, match="w_foot"):  # a bad value names its field
        OptimizationConfig().with_settings(["w_foot=-1"])


def test_gradient_only_config_switches_the_projection_off() -> None:
    cfg = OptimizationConfig().gradient_only()
    assert not cfg.projection and cfg.optimizer == "lbfgs" and cfg.final_iterations >= 100 and cfg.enabled
    assert cfg.w_heading > 0 and OptimizationConfig().w_heading == 0  # the projection meets the heading itself
    assert OptimizationConfig().w_foot > 0 and cfg.w_foot == 0  # gradient-only stage 1 keeps to the constraints


def test_heading_loss_is_zero_facing_the_target_and_grows_as_the_body_turns_away(walk) -> None:
    feats, _, _ = walk
    joints = features_to_pose_frames(feats)  # (1, T, 22, 3)
    T = joints.shape[1]
    cb = ControlBatch.empty(1, T)
    assert float(heading_loss(joints, cb)[0]) == 0.0  # no heading target: nothing to pay
    cb.heading[0] = facing_yaw(joints[0])
    cb.heading_mask[0, 10:50] = True
    within = float(heading_loss(rotate_y(joints, torch.tensor(math.radians(0.8 * HEADING_TOLERANCE_DEG))), cb)[0])
    assert float(heading_loss(joints, cb)[0]) == 0.0 and within == 0.0  # the stride's sway is free
    losses = [float(heading_loss(rotate_y(joints, torch.tensor(a)), cb)[0]) for a in (0.5, 1.5, math.pi)]
    assert 0 < losses[0] < losses[1] < losses[2]
    assert losses[2] == pytest.approx(1 + math.cos(math.radians(HEADING_TOLERANCE_DEG)), abs=1e-4)  # backwards


def test_foot_contact_loss_charges_planted_toes_that_slide_and_nothing_else() -> None:
    """A body gliding along x at 1 m/s with its toes 2 cm up pays (1 − tolerance)² per toe and
    transition; the same glide 20 cm up, a body standing still, and a glide after the motion's last
    frame (padding) pay nothing."""
    T = 21
    glide = torch.zeros(1, T, 22, 3)
    glide[..., 1] = 0.02
    glide[..., 0] = torch.arange(T, dtype=torch.float32)[None, :, None] * 0.05  # 0.05 m per frame at 20 fps
    n = torch.tensor([T])
    expected = 2 * (1.0 - FOOT_SPEED_TOLERANCE_M_S) ** 2
    assert float(foot_contact_loss(glide, n)[0]) == pytest.approx(expected, rel=1e-4)
    lifted = glide.clone()
    lifted[..., 1] = 0.2
    still = glide.clone()
    still[..., 0] = 0.0
    assert float(foot_contact_loss(lifted, n)[0]) == 0.0 and float(foot_contact_loss(still, n)[0]) == 0.0
    late = still.clone()
    late[:, 11:, :, 0] = torch.arange(T - 11, dtype=torch.float32)[None, :, None] * 0.05 + 0.05
    assert float(foot_contact_loss(late, torch.tensor([11]))[0]) == 0.0  # frames 11.. are padding
    assert float(foot_contact_loss(late, n)[0]) == pytest.approx(expected * 10 / 20, rel=1e-4)
    slow = glide.clone()
    slow[..., 0] *= 0.9 * FOOT_SPEED_TOLERANCE_M_S  # 0.9 × tolerance m/s: a rolling toe, free
    assert float(foot_contact_loss(slow, n)[0]) == 0.0


def test_stage_one_foot_term_stops_planted_toes_gliding(walk) -> None:
    """The walk pushed along +Z by an extra 1 m/s (its planted toes slide): five stage-1 steps with
    the foot term slow them to a tenth of the cost; without it (the default weight 0 in the loss) the
    same steps leave the motion alone, there being no constraint to meet."""
    feats, mean, std = walk
    glide = feats.clone()
    glide[..., feature_layout().root_lin_vel.start + 1] += 0.05  # m per frame at 20 fps
    n = torch.tensor([glide.shape[1] + 1])
    before = float(foot_contact_loss(features_to_pose_frames(glide), n)[0])
    assert before > 1.0
    cb = ControlBatch.empty(1, glide.shape[1] + 1)
    after = {}
    for w in (0.0, 3.0):
        opt = MotionOptimizer(cb, OptimizationConfig(w_foot=w), lambda x: x * std + mean, features_to_pose_frames)
        x = opt.optimize((glide - mean) / std, 5)
        after[w] = float(foot_contact_loss(features_to_pose_frames(x * std + mean), n)[0])
    assert after[0.0] == pytest.approx(before, rel=1e-4)
    assert after[3.0] < 0.1 * before, after


def test_gradient_only_stage_one_turns_the_body_to_the_heading_target(walk) -> None:
    """The body walks along +Z; the target says face 60 degrees to the right. With the heading term
    L-BFGS turns the facing to it, without it the facing stays where the model put it."""
    feats, mean, std = walk
    joints = features_to_pose_frames(feats)
    T = joints.shape[1]
    cb = ControlBatch.empty(1, T)
    target = facing_yaw(joints[0]) + math.pi / 3
    cb.heading[0] = target
    cb.heading_mask[0] = True
    x0 = (feats - mean) / std
    off = {}
    for w in (0.0, 1.0):
        cfg = OptimizationConfig(optimizer="lbfgs", w_heading=w)
        opt = MotionOptimizer(cb, cfg, lambda x: x * std + mean, features_to_pose_frames)
        x = opt.optimize(x0, 60)
        yaw = facing_yaw(features_to_pose_frames(x * std + mean)[0])
        off[w] = float(torch.rad2deg(torch.atan2(torch.sin(yaw - target), torch.cos(yaw - target))).abs().median())
    assert off[0.0] > 50, off
    assert off[1.0] < 10, off


def test_align_places_the_canonical_pose_on_the_generated_root_and_yaw() -> None:
    joints = torch.from_numpy(synthetic_walk(40, 1.0, 0.8))[None]  # turning: yaw changes over time
    T = joints.shape[1]
    cb = ControlBatch.empty(1, T)
    f = 30
    yaw = facing_yaw(joints[0, f])
    assert abs(float(yaw)) > 0.3
    cb.pose[0, f] = rotate_y(joints[0, f] - joints[0, f, :1], -yaw)  # the pose as a photo gives it
    cb.pose_mask[0, f] = True
    cb.pose_weight[0, f] = 1.0
    target = align_keyframes(joints, cb, align_yaw=True)
    torch.testing.assert_close(target[0, f], joints[0, f], atol=1e-4, rtol=0)
    assert float(constraint_losses(joints, cb)[1]) < 1e-7
    assert float(constraint_losses(joints, cb, align_yaw=False)[1]) > 1e-3
    # A trajectory point at that frame moves the placed pose onto it.
    cb.traj[0, f] = joints[0, f, 0] + torch.tensor([0.5, 0.0, 0.0])
    cb.traj_mask[0, f, 0] = True
    moved = align_keyframes(joints, cb)
    torch.testing.assert_close(moved[0, f, :, 0] - joints[0, f, :, 0], torch.full((22,), 0.5), atol=1e-4, rtol=0)
    errs = measured_errors(joints[0].numpy(), ControlSignals(cb.traj[0], cb.traj_mask[0], cb.pose[0],
                                                             cb.pose_mask[0], cb.pose_weight[0]))
    assert errs["traj_err_mean"] == pytest.approx(0.5, abs=1e-4) and errs["keyframe_mpjpe"] < 1e-4


def _spec(**kw) -> MotionSpec:
    return MotionSpec(description=MotionDescription(text="a person walks", duration_s=2.0), n_frames=40, **kw)


def test_generate_validates_the_spec_before_anything_else(tmp_path) -> None:
    from ikmo.tools.generate import generate_motion

    pose = np.zeros((22, 3)).tolist()
    bad = [
        _spec(keyframes=[KeyframePose(time_s=5.0, joints=pose)]),  # after the end
        _spec(trajectory=Trajectory(positions=[[0, 0.9, i * 2.0] for i in range(40)], mask=[True] * 40)),  # 40 m/s
        _spec(trajectory=Trajectory(positions=[[0, 0.9, 0]] * 10, mask=[True] * 10)),  # wrong length
    ]
    missing = tmp_path / "no-weights"
    for spec in bad:
        with pytest.raises(ConstraintError):
            # raises before loading weights
            generate_motion(spec, tmp_path / "out", settings=ToolSettings(weights=missing))
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError):
        KeyframePose(time_s=0.0, joints=pose, joint_mask=[False] * 22)  # a keyframe with no joints
    with pytest.raises(ValueError):
        KeyframePose(time_s=0.0, joints=[[float("nan"), 0, 0]] + pose[1:])


def test_segment_weights_cross_fade_and_sum_to_one() -> None:
    from ikmo.motion_model.sampling import segment_weights

    w = segment_weights(60, [(0, 30), (30, 50)], fade=10)
    np.testing.assert_allclose(w.sum(0), 1.0)
    assert w[1, :20].min() > 1 - 1e-9 and w[2, 36:45].min() > 1 - 1e-9
    assert 0.3 < w[1, 29] < 0.7 and 0.3 < w[2, 30] < 0.7  # halfway through the fade at the boundary
    assert w[0, 56:].min() > 1 - 1e-9  # no segment after frame 50: the motion's own text
    np.testing.assert_array_equal(segment_weights(20, [], fade=10), np.ones((1, 20)))


def test_timed_texts_phrase_segments_and_need_two() -> None:
    from ikmo.motion_model.constraints import Segment

    two = MotionDescription(text="walk then wave", duration_s=4.0, segments=[
        Segment(action="walk", start_s=0, end_s=2, text="walks forward"),
        Segment(action="wave-right-hand", start_s=2, end_s=4)])
    tts = two.timed_texts()
    assert [(t.text, t.start, t.end) for t in tts] == [("a person walks forward", 0, 40),
                                                        ("a person wave right hand", 40, 80)]
    one = MotionDescription(text="walk", duration_s=2.0, segments=[Segment(action="walk", start_s=0, end_s=2)])
    assert one.timed_texts() == []


def test_timed_texts_follow_their_frames(tiny_model) -> None:
    from ikmo.motion_model.constraints import TimedText

    same = [TimedText(text="a person walks", start=0, end=20), TimedText(text="a person walks", start=20, end=40)]
    plain = sample(tiny_model, ["a person walks"], [40], seed=3)[0]
    timed = sample(tiny_model, ["a person walks"], [40], seed=3, timed_texts=[same])[0]
    # The same text everywhere, blended with weights summing to 1, is the plain motion.
    np.testing.assert_allclose(timed.features, plain.features, atol=1e-4)
    other = [TimedText(text="a person walks", start=0, end=20), TimedText(text="a person jumps high", start=20, end=40)]
    mixed = sample(tiny_model, ["a person walks"], [40], seed=3, timed_texts=[other])[0]
    jumps = sample(tiny_model, ["a person jumps high"], [40], seed=3)[0]
    d_plain = np.abs(mixed.features - plain.features).mean(-1)
    d_jumps = np.abs(mixed.features - jumps.features).mean(-1)
    assert d_plain[:10].mean() < d_jumps[:10].mean()  # the start follows "walks"
    assert d_jumps[30:].mean() < d_plain[30:].mean()  # the end follows "jumps"
    with pytest.raises(ConstraintError):
        sample(tiny_model, ["a", "b"], [20, 20], timed_texts=[same])


def test_the_last_frame_moves_on_at_the_motions_last_speed() -> None:
    from ikmo.motion_model.sampling import settle_last_frame

    t = np.arange(10, dtype=np.float64)[:, None, None]
    walk = np.zeros((10, 22, 3)) + np.linspace(0, 1, 22)[None, :, None]
    walk = walk + t * np.array([0.0, 0.0, 0.06]) + 0.01 * np.sin(t) * np.arange(22)[None, :, None] / 22
    popped = walk.copy()
    popped[-1] += 0.2  # the last frame off by 20 cm, as a decoded velocity row can put it
    settled = settle_last_frame(popped, keep_pelvis=False)
    assert np.array_equal(settled[:-1], popped[:-1])
    expected = 2 * walk[-2] - walk[-3]
    assert np.allclose(settled[-1], expected, atol=1e-12)
    kept = settle_last_frame(popped, keep_pelvis=True)  # a trajectory point placed the pelvis: it stays
    assert np.allclose(kept[-1, 0], popped[-1, 0])
    assert np.allclose(kept[-1] - kept[-1, :1], expected - expected[:1], atol=1e-12)
