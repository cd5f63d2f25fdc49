"""Networks, text encoders, checkpoints: shapes, masks, zero-init ControlNet, caching, round trips."""

from __future__ import annotations

import pytest
import torch

from ikmo.motion_model.control.control_batch import ControlBatch
from ikmo.motion_model.errors import ConfigError
from ikmo.motion_model.model.checkpoints import load_checkpoint, save_checkpoint
from ikmo.motion_model.model.networks import IKMoNet, control_inputs
from ikmo.motion_model.model.text_encoder import CachedTextEncoder, HashTextEncoder, build_text_encoder
from ikmo.motion_model.model_config import ControlConfig, DenoiserConfig, DiffusionConfig, ModelConfig

pytestmark = pytest.mark.unit

TINY = DenoiserConfig(d_model=32, n_layers=2, n_heads=2, ff_dim=64, text_dim=16, dropout=0.0)


def _inputs(B: int = 2, L: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, TINY.feature_dim, generator=g)
    t = torch.randint(0, 1000, (B,), generator=g)
    text = torch.randn(B, TINY.text_dim, generator=g)
    keep = torch.tensor([True, False][:B])
    valid = torch.ones(B, L, dtype=torch.bool)
    valid[1, L // 2:] = False
    return x, t, text, keep, valid


def _random_control(B: int, T: int) -> ControlBatch:
    cb = ControlBatch.empty(B, T)
    cb.traj[:] = torch.randn(B, T, 3)
    cb.traj_mask[:, ::3, 0] = True
    cb.traj_mask[:, ::3, 2] = True
    cb.pose[:, 4] = torch.randn(B, 22, 3) * 0.3
    cb.pose_mask[:, 4] = True
    cb.pose_weight[:, 4] = 1.0
    return cb


def test_denoiser_shapes_and_padding_isolation() -> None:
    torch.manual_seed(0)
    net = IKMoNet(ModelConfig(denoiser=TINY)).eval()
    x, t, text, keep, valid = _inputs()
    out = net(x, t, text, keep, valid)
    assert out.shape == x.shape
    # Padded rows of motion 1 must not influence its valid rows.
    x2 = x.clone()
    x2[1, ~valid[1]] = 100.0
    out2 = net(x2, t, text, keep, valid)
    assert torch.allclose(out[1, valid[1]], out2[1, valid[1]], atol=1e-5)
    assert not torch.allclose(out[1, ~valid[1]], out2[1, ~valid[1]])


def test_text_dropout_is_the_null_condition() -> None:
    torch.manual_seed(0)
    net = IKMoNet(ModelConfig(denoiser=TINY)).eval()
    x, t, text, _, valid = _inputs()
    off = torch.zeros(2, dtype=torch.bool)
    a = net(x, t, text, off, valid)
    b = net(x, t, torch.randn_like(text), off, valid)
    assert torch.equal(a, b)
    assert not torch.allclose(net(x, t, text, ~off, valid), a)


@pytest.mark.parametrize("mode", ["decoupled", "joint"])
def test_controlnet_at_init_leaves_base_output_exactly_unchanged(mode: str) -> None:
    torch.manual_seed(0)
    net = IKMoNet(ModelConfig(denoiser=TINY)).eval()
    x, t, text, keep, valid = _inputs(L=12)
    base_out = net(x, t, text, keep, valid)
    net.add_control(ControlConfig(mode=mode, hidden=16))
    net.eval()
    cb = _random_control(2, 13)
    assert torch.equal(net(x, t, text, keep, valid, cb), base_out)
    # The copy starts from the base weights.
    assert torch.equal(net.control.copy.layers[0].linear1.weight, net.base.layers[0].linear1.weight)
    # After one step on the zero layers the control changes the output.
    with torch.no_grad():
        for z in net.control.zero_out:
            z.weight.normal_(0, 0.1)
    assert not torch.allclose(net(x, t, text, keep, valid, cb), base_out)


def test_decoupled_and_joint_encoders_have_similar_size() -> None:
    sizes = {}
    for mode in ("decoupled", "joint"):
        net = IKMoNet(ModelConfig(denoiser=TINY, control=ControlConfig(mode=mode, hidden=64)))
        sizes[mode] = sum(p.numel() for p in net.control.encoder.parameters())
    assert abs(sizes["decoupled"] - sizes["joint"]) / sizes["decoupled"] < 0.15


def test_control_inputs_use_masks_not_zeros() -> None:
    cb = ControlBatch.empty(1, 5)
    cb.traj_mask[0, 2] = True  # a real constraint at the origin: value zero, mask one
    traj_in, pose_in = control_inputs(cb, 4)
    assert traj_in.shape == (1, 4, 12) and pose_in.shape == (1, 4, 2 * 22 * 4)
    assert traj_in[0, 1, 9:].sum() == 3 and traj_in[0, 2, 3:6].sum() == 3  # rows 1 and 2 both see frame 2
    assert traj_in[0, 0].abs().sum() == 0


def test_hash_encoder_deterministic_and_cache_encodes_once() -> None:
    calls: list[int] = []

    class Counting(HashTextEncoder):
        def encode(self, texts: list[str]) -> torch.Tensor:
            calls.append(len(texts))
            return super().encode(texts)

    enc = CachedTextEncoder(Counting(32))
    a = enc.encode(["a person walks", "a person jumps", "a person walks"])
    b = enc.encode(["a person walks"])
    assert calls == [2]
    assert a.shape == (3, 32) and torch.equal(a[0], b[0]) and torch.equal(a[0], a[2])
    assert not torch.allclose(a[0], a[1])
    with pytest.raises(ConfigError):
        build_text_encoder("word2vec")


def test_checkpoint_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    net = IKMoNet(ModelConfig(denoiser=TINY, control=ControlConfig(hidden=16), text_encoder="hash:16")).eval()
    net.set_normalization(torch.randn(TINY.feature_dim), torch.rand(TINY.feature_dim) + 0.5)
    save_checkpoint(tmp_path, net, DiffusionConfig(sample_steps=7), {"train": {"step": 3}})
    net2, dcfg, meta = load_checkpoint(tmp_path, torch.device("cpu"))
    net2.eval()
    x, t, text, keep, valid = _inputs()
    cb = _random_control(2, 13)
    assert torch.equal(net(x, t, text, keep, valid, cb), net2(x, t, text, keep, valid, cb))
    assert dcfg.sample_steps == 7 and meta["train"]["step"] == 3
    assert torch.equal(net2.mean, net.mean)
    (tmp_path / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(ConfigError):
        load_checkpoint(tmp_path, torch.device("cpu"))


def test_root_targets_reproduce_the_features_root_channels() -> None:
    """A path with its heading gives exactly the root channels of the motion it came from."""
    import numpy as np

    from ikmo.motion_model.data.synthetic import synthetic_walk
    from ikmo.motion_model.model.networks import ROOT_CHANNELS, root_targets
    from ikmo.motion_model.representation.features import features_to_pose_frames, joints_to_features, root_heading

    feats = torch.from_numpy(np.asarray(joints_to_features(synthetic_walk(60, 1.2, 0.8)), dtype=np.float32))[None]
    joints = features_to_pose_frames(feats)
    cb = ControlBatch.empty(1, 60)
    cb.traj[0], cb.traj_mask[0] = joints[0, :, 0], True
    cb.heading[0], cb.heading_mask[0] = root_heading(feats)[0], True
    mean, std = feats[0].mean(0), feats[0].std(0).clamp(min=1e-3)
    got = root_targets(cb, 59, mean, std)
    assert got.shape == (1, 59, 11)
    want = (feats[..., :ROOT_CHANNELS] - mean[:ROOT_CHANNELS]) / std[:ROOT_CHANNELS]
    assert torch.allclose(got[..., :ROOT_CHANNELS], want, atol=1e-4)
    assert bool((got[..., 4:8] == 1).all())
    # Without the heading only the height and the world-frame step remain.
    cb.heading_mask[:] = False
    bare = root_targets(cb, 59, mean, std)
    assert bare[..., :3].abs().sum() == 0 and bare[..., 4:7].sum() == 0 and bool((bare[..., 7] == 1).all())
    step = (joints[0, 1:, 0] - joints[0, :-1, 0])[:, 0::2] * 20.0
    assert torch.allclose(bare[0, :, 8:10], step, atol=1e-5) and bool((bare[..., 10] == 1).all())


@pytest.mark.parametrize("mode", ["decoupled", "joint"])
def test_widening_the_trajectory_inputs_keeps_what_the_controlnet_computes(mode: str) -> None:
    torch.manual_seed(0)
    net = IKMoNet(ModelConfig(denoiser=TINY, control=ControlConfig(mode=mode, hidden=16))).eval()
    with torch.no_grad():  # a "trained" ControlNet: non-zero output layers
        for z in net.control.zero_out:
            z.weight.normal_(0, 0.1)
    x, t, text, keep, valid = _inputs(L=12)
    cb = _random_control(2, 13)
    cb.heading[:] = torch.linspace(0, 1, 13)
    cb.heading_mask[:] = True
    before = net(x, t, text, keep, valid, cb)
    wide = ControlConfig(mode=mode, hidden=16, traj_features="root", output_head=True)
    net.widen_control_inputs(wide)
    net.eval()
    assert net.cfg.control == wide and net.control is not None and net.control.out_head is not None
    assert torch.allclose(net(x, t, text, keep, valid, cb), before, atol=1e-6)
    with torch.no_grad():  # the head acts once trained
        net.control.out_head.weight.normal_(0, 0.1)
    assert not torch.allclose(net(x, t, text, keep, valid, cb), before, atol=1e-3)
    with pytest.raises(ValueError, match="only traj_features"):
        net.widen_control_inputs(ControlConfig(mode=mode, hidden=32, traj_features="root"))
    with pytest.raises(ValueError, match="cannot take"):
        net.widen_control_inputs(ControlConfig(mode=mode, hidden=16, traj_features="xyz", output_head=True))


def test_cfg_does_not_amplify_the_root_channels_the_constraints_fix() -> None:
    from ikmo.motion_model.model.diffusion import GaussianDiffusion

    diff = GaussianDiffusion(DiffusionConfig(constrained_guidance_scale=1.0))
    cb = ControlBatch.empty(2, 13)
    cb.traj_mask[0, :, 0] = cb.traj_mask[0, :, 2] = True  # motion 0: a dense ground path with its heading
    cb.heading_mask[0] = True
    xyz = IKMoNet(ModelConfig(denoiser=TINY, control=ControlConfig(hidden=16)))
    assert diff._guidance_scales(xyz, cb, (2, 12, TINY.feature_dim), 2.5) == 2.5  # older ControlNets: as before
    root = IKMoNet(ModelConfig(denoiser=TINY, control=ControlConfig(hidden=16, traj_features="root")))
    s = diff._guidance_scales(root, cb, (2, 12, TINY.feature_dim), 2.5)
    assert isinstance(s, torch.Tensor) and s.shape == (2, 12, TINY.feature_dim)
    from ikmo.motion_model.representation.features import feature_layout

    lv = feature_layout().local_vel  # the joints' velocities carry the root's too
    assert bool((s[0, :, :3] == 1.0).all()) and bool((s[0, :, lv] == 1.0).all())
    assert bool((s[0, :, 3:lv.start] == 2.5).all()) and bool((s[0, :, lv.stop:] == 2.5).all())  # height: xz path
    assert bool((s[1] == 2.5).all())  # motion 1 has no constraint
    assert diff._guidance_scales(root, ControlBatch.empty(2, 13), (2, 12, TINY.feature_dim), 2.5) == 2.5


def test_averaged_checkpoints_hold_the_mean_weights(tmp_path) -> None:
    from ikmo.motion_model.model.checkpoints import average_checkpoints

    cfg = ModelConfig(denoiser=TINY, control=ControlConfig(hidden=16), text_encoder="hash:16")
    nets = []
    for k in range(3):
        torch.manual_seed(k)
        nets.append(IKMoNet(cfg))
        save_checkpoint(tmp_path / f"c{k}", nets[-1], DiffusionConfig(), {"train": {"step": 100 * k}})
    meta = average_checkpoints([tmp_path / f"c{k}" for k in range(3)], tmp_path / "avg")
    avg, _, _ = load_checkpoint(tmp_path / "avg", torch.device("cpu"))
    w = "control.encoder.traj.net.0.weight"
    want = torch.stack([n.state_dict()[w] for n in nets]).mean(0)
    assert torch.allclose(avg.state_dict()[w], want, atol=1e-6) and meta["averaged_steps"] == [0, 100, 200]
    other = IKMoNet(ModelConfig(denoiser=TINY, control=ControlConfig(hidden=8), text_encoder="hash:16"))
    save_checkpoint(tmp_path / "odd", other, DiffusionConfig(), {})
    with pytest.raises(ConfigError, match="differ"):
        average_checkpoints([tmp_path / "c0", tmp_path / "odd"], tmp_path / "avg2")
