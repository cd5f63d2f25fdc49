"""The ControlNet's constraint loss on a padded training batch (motion_model/model/training.py): the
ground truth meets constraints taken from itself, the last frame of a shorter crop included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ikmo.motion_model.control.align import facing_yaw, rotate_y
from ikmo.motion_model.control.control_batch import ControlBatch
from ikmo.motion_model.data.synthetic import synthetic_walk
from ikmo.motion_model.model.networks import IKMoNet
from ikmo.motion_model.model.training import control_adherence_loss
from ikmo.motion_model.model_config import ControlConfig, DenoiserConfig, ModelConfig
from ikmo.motion_model.representation.features import features_to_pose_frames, joints_to_features

pytestmark = pytest.mark.unit


def test_ground_truth_meets_its_own_constraints_in_a_padded_batch() -> None:
    feats = torch.from_numpy(np.asarray(joints_to_features(synthetic_walk(60, 1.2, 0.5)), dtype=np.float32))
    crops = [feats[:59], feats[5:35]]  # 59 and 30 rows: the second is padded in the batch
    net = IKMoNet(ModelConfig(denoiser=DenoiserConfig(d_model=16, n_layers=1, n_heads=2, ff_dim=32, text_dim=8),
                              control=ControlConfig(hidden=8), text_encoder="hash:8"))
    net.mean.copy_(feats.mean(0))
    net.std.copy_(feats.std(0).clamp(min=1e-3))
    x0 = torch.zeros(2, 59, feats.shape[1])
    valid = torch.zeros(2, 59, dtype=torch.bool)
    cb = ControlBatch.empty(2, 60)
    for b, c in enumerate(crops):
        x0[b, : len(c)] = net.normalize(c)
        valid[b, : len(c)] = True
        own = features_to_pose_frames(c[None].double())[0].float()  # (len + 1, 22, 3), decoded alone
        T = len(c) + 1
        cb.traj[b, :T] = own[:, 0]
        cb.traj_mask[b, :T, 0] = cb.traj_mask[b, :T, 2] = True
        last = own[T - 1]  # a full-body keyframe on the crop's last frame
        cb.pose[b, T - 1] = rotate_y(last - last[:1], -facing_yaw(last))
        cb.pose_mask[b, T - 1] = True
        cb.pose_weight[b, T - 1] = 1.0
    loss = control_adherence_loss(x0, valid, net, cb, features_to_pose_frames)
    assert float(loss) < 1e-8


def test_training_controls_carry_the_true_heading_when_asked() -> None:
    from ikmo.motion_model.model.training import sample_controls
    from ikmo.motion_model.representation.features import root_heading

    feats = torch.from_numpy(np.asarray(joints_to_features(synthetic_walk(60, 1.2, 0.8)), dtype=np.float32))
    raw = feats[None].repeat(64, 1, 1)
    joints = features_to_pose_frames(raw)
    heading = root_heading(raw)
    g = torch.Generator().manual_seed(0)
    cb = sample_controls(joints, [60] * 64, g, heading, heading_prob=1.0)
    with_traj = cb.traj_mask.any(-1).any(-1)
    assert bool((cb.heading_mask.any(-1) == with_traj).all())  # every trajectory, and only those
    assert torch.allclose(cb.heading[cb.heading_mask], heading[cb.heading_mask])
    none = sample_controls(joints, [60] * 64, torch.Generator().manual_seed(0), heading, heading_prob=0.0)
    assert not bool(none.heading_mask.any())
    # heading_prob 0 draws nothing extra: the batches of older runs stay the same.
    old = sample_controls(joints, [60] * 64, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(old.tensors(), none.tensors(), strict=True))


def test_root_target_loss_is_zero_on_the_truth_and_counts_only_given_channels() -> None:
    from ikmo.motion_model.model.training import root_target_loss
    from ikmo.motion_model.representation.features import root_heading

    feats = torch.from_numpy(np.asarray(joints_to_features(synthetic_walk(40, 1.2, 0.8)), dtype=np.float32))[None]
    net = IKMoNet(ModelConfig(denoiser=DenoiserConfig(d_model=16, n_layers=1, n_heads=2, ff_dim=32, text_dim=8),
                              control=ControlConfig(hidden=8, traj_features="root"), text_encoder="hash:8"))
    net.mean.copy_(feats[0].mean(0))
    net.std.copy_(feats[0].std(0).clamp(min=1e-3))
    x0 = net.normalize(feats)
    valid = torch.ones(1, 39, dtype=torch.bool)
    cb = ControlBatch.empty(1, 40)
    cb.traj[0] = features_to_pose_frames(feats)[0, :, 0]
    cb.traj_mask[0, :, 0] = cb.traj_mask[0, :, 2] = True
    cb.heading[0], cb.heading_mask[0] = root_heading(feats)[0], True
    assert float(root_target_loss(x0, valid, net, cb)) < 1e-8
    off = x0.clone()
    off[..., 3] += 5.0  # the height is not constrained (xz path): not counted
    off[..., 10:] += 5.0  # nor are the other channels
    assert float(root_target_loss(off, valid, net, cb)) < 1e-8
    off[..., 1] += 1.0  # the body-frame velocity is: 3 given channels, one off by 1
    assert float(root_target_loss(off, valid, net, cb)) == pytest.approx(1 / 3, rel=1e-4)


def test_swap_roots_gives_only_motions_with_root_targets_another_motions_root_motion() -> None:
    from ikmo.motion_model.model.training import swap_roots
    from ikmo.motion_model.representation.features import feature_layout

    net = IKMoNet(ModelConfig(denoiser=DenoiserConfig(d_model=16, n_layers=1, n_heads=2, ff_dim=32, text_dim=8),
                              control=ControlConfig(hidden=8, traj_features="root"), text_encoder="hash:8"))
    x0 = torch.randn(3, 9, net.cfg.denoiser.feature_dim)
    cb = ControlBatch.empty(3, 10)
    cb.traj_mask[:2, :, 0] = cb.traj_mask[:2, :, 2] = True  # motions 0 and 1: a path ...
    cb.heading_mask[0] = True  # ... but only motion 0 has its heading, hence root targets
    lv = feature_layout().local_vel
    # By default the root channels only (how eval/weights/root_target was trained).
    hook = swap_roots(x0, cb, net, 1.0, torch.Generator().manual_seed(0))
    out = hook(x0.clone(), torch.ones(3, 1, 1))  # no noise: x_t = x0
    assert torch.allclose(out[0, :, :4], x0[2, :, :4], atol=1e-6)  # motion 2's root, rolled by one
    assert torch.equal(out[0, :, 4:], x0[0, :, 4:]) and torch.equal(out[1:], x0[1:])
    # With `velocities` the joints' local velocities, which carry the root's speed, come with it.
    hook = swap_roots(x0, cb, net, 1.0, torch.Generator().manual_seed(0), velocities=True)
    out = hook(x0.clone(), torch.full((3, 1, 1), 0.5))
    assert torch.allclose(out[0, :, :4], x0[0, :, :4] + 0.5 * (x0[2, :, :4] - x0[0, :, :4]), atol=1e-6)
    assert torch.allclose(out[0, :, lv], x0[0, :, lv] + 0.5 * (x0[2, :, lv] - x0[0, :, lv]), atol=1e-6)
    assert torch.equal(out[0, :, 4:lv.start], x0[0, :, 4:lv.start])
    assert torch.equal(out[0, :, lv.stop:], x0[0, :, lv.stop:])
    assert torch.equal(out[1:], x0[1:])


def test_rollout_xt_is_one_sampler_step_from_the_networks_own_prediction() -> None:
    from ikmo.motion_model.model.diffusion import GaussianDiffusion
    from ikmo.motion_model.model_config import DiffusionConfig

    net = IKMoNet(ModelConfig(denoiser=DenoiserConfig(d_model=16, n_layers=1, n_heads=2, ff_dim=32, text_dim=8),
                              control=ControlConfig(hidden=8), text_encoder="hash:8"))
    net.train()
    net.base.eval()  # as in the control stage: the frozen base without dropout, the ControlNet with it
    diffusion = GaussianDiffusion(DiffusionConfig(sample_steps=10))
    assert diffusion.rollout_stride() == 111  # the evenly spaced 10-step grid 999, 888, ..., 0
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 9, net.cfg.denoiser.feature_dim, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    valid = torch.ones(2, 9, dtype=torch.bool)
    valid[1, 6:] = False
    text, keep = torch.randn(2, 8, generator=g), torch.ones(2, dtype=torch.bool)
    cb = ControlBatch.empty(2, 10)
    cb.traj[:, :, 0] = torch.linspace(0, 1, 10)
    cb.traj_mask[:, :, 0] = cb.traj_mask[:, :, 2] = True

    t = torch.tensor([500, 500])
    got = diffusion.rollout_xt(net, x0, t, noise, valid, text, keep, cb)
    # The same as the sampler: its DDIM step from the eval-mode prediction at 611, made from noised truth.
    assert net.control is not None and net.control.training and not net.base.training  # modes kept
    net.eval()
    x_s = diffusion.q_sample(x0, torch.tensor([611, 611]), noise) * valid[..., None]
    with torch.no_grad():
        pred = net(x_s, torch.tensor([611, 611]), text, keep, valid, cb) * valid[..., None]
    want = diffusion._ddim_step(x_s, pred, 611, 500, g) * valid[..., None]
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, diffusion.q_sample(x0, t, noise) * valid[..., None], atol=1e-2)
    assert bool((got[1, 6:] == 0).all())  # padding stays zero
    # Two steps: 722 → 611 → 500, each from the network's own prediction.
    net.train()
    net.base.eval()
    got = diffusion.rollout_xt(net, x0, t, noise, valid, text, keep, cb, n_steps=2)
    net.eval()
    x = diffusion.q_sample(x0, torch.tensor([722, 722]), noise) * valid[..., None]
    for s, nxt in ((722, 611), (611, 500)):
        with torch.no_grad():
            pred = net(x, torch.tensor([s, s]), text, keep, valid, cb) * valid[..., None]
        x = diffusion._ddim_step(x, pred, s, nxt, g) * valid[..., None]
    assert torch.allclose(got, x, atol=1e-5)
    # At the top of the grid there is no noisier step: x_t is noised ground truth.
    top = torch.tensor([999, 950])
    got = diffusion.rollout_xt(net, x0, top, noise, valid, text, keep, cb, n_steps=3)
    assert torch.allclose(got[0], diffusion.q_sample(x0, top, noise)[0] * valid[0, :, None])
    # 950's chain starts from pure noise at the top and steps once to 950 (its grid above collapses there).
    x_top = diffusion.q_sample(x0, torch.tensor([999, 999]), noise) * valid[..., None]
    net.eval()
    with torch.no_grad():
        pred = net(x_top, torch.tensor([999, 999]), text, keep, valid, cb) * valid[..., None]
    want = diffusion._ddim_step(x_top, pred, 999, 950, g) * valid[..., None]
    assert torch.allclose(got[1], want[1], atol=1e-5)


def test_training_loss_learns_from_rolled_out_inputs_only_when_asked() -> None:
    from ikmo.motion_model.model.diffusion import GaussianDiffusion
    from ikmo.motion_model.model_config import DiffusionConfig

    net = IKMoNet(ModelConfig(denoiser=DenoiserConfig(d_model=16, n_layers=1, n_heads=2, ff_dim=32, text_dim=8),
                              text_encoder="hash:8"))
    net.eval()  # no dropout: the losses differ only by their inputs
    diffusion = GaussianDiffusion(DiffusionConfig(sample_steps=10))
    x0 = torch.randn(4, 9, net.cfg.denoiser.feature_dim, generator=torch.Generator().manual_seed(1))
    valid, text, keep = torch.ones(4, 9, dtype=torch.bool), torch.randn(4, 8), torch.ones(4, dtype=torch.bool)

    def loss(**kw: float) -> float:
        with torch.no_grad():
            return float(diffusion.training_loss(net, x0, valid, text, keep, torch.Generator().manual_seed(0), **kw))

    plain = loss()
    assert loss(rollout_prob=0.0) == plain  # off: the same draws and inputs as before the option
    assert loss(rollout_prob=1.0) != pytest.approx(plain, rel=1e-4)  # the base stage rolls out too
