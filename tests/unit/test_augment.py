"""Time-warping a crop: identity at rate 1, speed × rate and the same path otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from ikmo.motion_model.data.augment import time_warp, warp_joints
from ikmo.motion_model.data.synthetic import synthetic_walk
from ikmo.motion_model.representation.features import features_to_pose_frames, joints_to_features
from ikmo.motion_model.representation.skeleton import FPS


def _walk(n: int = 81, speed: float = 1.2, turn: float = 0.4) -> torch.Tensor:
    return torch.as_tensor(np.asarray(joints_to_features(synthetic_walk(n, speed, turn)), dtype=np.float32))


def _walk_and_curve(curve_caption: str) -> tuple[Any, Any, Any, dict[str, torch.Tensor]]:
    """A two-clip corpus (a straight forward walk, a curve), a tiny network, the hash text encoder and
    the clips' caption embeddings: what `training._make_batch` needs."""
    from ikmo.motion_model.model.networks import IKMoNet
    from ikmo.motion_model.model.text_encoder import build_text_encoder
    from ikmo.motion_model.model.training import Clip, Corpus
    from ikmo.motion_model.model_config import DenoiserConfig, ModelConfig

    clips = [Clip("walk", _walk(120, 1.2, 0.0).numpy(), ["a person walks forward."]),
             Clip("curve", _walk(90, 0.8, 1.0).numpy(), [curve_caption])]
    corpus = Corpus(clips, clips[0].features.mean(0), clips[0].features.std(0) + 1e-3)
    net = IKMoNet(ModelConfig(denoiser=DenoiserConfig(d_model=16, n_layers=1, n_heads=2, ff_dim=32, text_dim=8),
                              text_encoder="hash:8"))
    enc = build_text_encoder("hash:8", torch.device("cpu"))
    return corpus, net, enc, {c.captions[0]: enc.encode(c.captions)[0] for c in clips}


def test_rate_one_gives_the_crop_back() -> None:
    f = _walk()
    np.testing.assert_allclose(time_warp(f, 1.0).numpy(), f.numpy(), atol=1e-4)


def test_a_faster_crop_covers_the_same_path_in_fewer_frames() -> None:
    f = _walk(81, speed=1.0, turn=0.5)
    fast = time_warp(f, 2.0)
    assert fast.shape == (40, f.shape[1])  # 81 frames → 41 frames → 40 rows
    j, jf = features_to_pose_frames(f), features_to_pose_frames(fast)
    np.testing.assert_allclose(jf[:, 0].numpy(), j[::2, 0].numpy(), atol=2e-3)  # the pelvis on its old path
    speed = lambda x: float((x[1:, 0, [0, 2]] - x[:-1, 0, [0, 2]]).norm(dim=-1).mean()) * FPS  # noqa: E731
    assert speed(jf) == pytest.approx(2 * speed(j), rel=0.02)
    slow = time_warp(f, 0.8, n_rows=90)
    assert slow.shape[0] == 90
    assert speed(features_to_pose_frames(slow)) == pytest.approx(0.8 * speed(j), rel=0.02)


def test_warp_joints_interpolates_and_refuses_what_the_source_cannot_cover() -> None:
    j = torch.arange(5, dtype=torch.float32)[:, None, None].expand(5, 2, 3)
    np.testing.assert_allclose(warp_joints(j, 0.5)[:, 0, 0].numpy(), np.arange(9) / 2)
    with pytest.raises(ValueError, match="cannot give"):
        warp_joints(j, 2.0, n_out=4)
    with pytest.raises(ValueError, match="positive"):
        warp_joints(j, 0.0)


def test_training_batches_time_warp_only_when_asked() -> None:
    from ikmo.motion_model.model.networks import IKMoNet
    from ikmo.motion_model.model.training import Clip, Corpus, _make_batch
    from ikmo.motion_model.model_config import DenoiserConfig, ModelConfig, TrainConfig

    clips = [Clip(f"w{i}", _walk(120, speed=1.0 + 0.2 * i, turn=0.0).numpy(), [f"walk {i}"]) for i in range(4)]
    corpus = Corpus(clips, clips[0].features.mean(0), clips[0].features.std(0) + 1e-3)
    net = IKMoNet(ModelConfig(denoiser=DenoiserConfig(d_model=16, n_layers=1, n_heads=2, ff_dim=32, text_dim=8),
                              text_encoder="hash:8"))
    emb = {c.captions[0]: torch.zeros(8) for c in clips}
    plain = TrainConfig(stage="control", batch_size=8, min_len=40, long_crop_prob=1.0)
    warped = plain.model_copy(update={"time_warp_prob": 1.0, "time_warp_max": 1.5})
    *_, crops = _make_batch(corpus, emb, net, plain, 196, torch.Generator().manual_seed(0))
    *_, again = _make_batch(corpus, emb, net, plain.model_copy(update={"time_warp_max": 2.0}),
                            196, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(crops, again, strict=True))  # prob 0 draws nothing more
    assert {len(c) for c in crops} == {119}  # whole clips, unwarped
    *_, wcrops = _make_batch(corpus, emb, net, warped, 196, torch.Generator().manual_seed(0))
    lengths = {len(c) for c in wcrops}
    assert len(lengths) > 1 and all(119 / 1.5 - 1 <= n <= 119 for n in lengths), lengths
    for c in wcrops:  # each a walk of the corpus at a speed between 1/1.5 and 1.5 times its own
        v = float(c[:, 2].mean()) * FPS
        assert 1.0 / 1.5 - 0.05 <= v <= 1.6 * 1.5 + 0.05


def test_concatenate_continues_the_second_crop_from_where_the_first_ended() -> None:
    from ikmo.motion_model.control.align import facing_yaw
    from ikmo.motion_model.data.augment import concatenate

    walk = _walk(61, speed=1.0, turn=0.0)  # 3 s straight ahead along +Z
    turn = _walk(61, speed=0.8, turn=1.0)  # 3 s on a left curve
    both = concatenate(walk, turn, blend=8)
    assert both.shape == (60 + 60 - 8, walk.shape[1])
    j, jw = features_to_pose_frames(both), features_to_pose_frames(walk)
    # the first part is the walk itself, up to the seam
    np.testing.assert_allclose(j[:50, 0].numpy(), jw[:50, 0].numpy(), atol=1e-3)
    # the pelvis never jumps: no step longer than the faster crop's
    step = (j[1:, 0, [0, 2]] - j[:-1, 0, [0, 2]]).norm(dim=-1)
    assert float(step.max()) < 1.2 / FPS
    # after the seam it curves on: the body ends turned by the curve's rotation (≈ 1 rad/s × ~2.6 s)
    yaw = facing_yaw(j)
    assert abs(float(yaw[55])) < 0.3 and float(yaw[-1] - yaw[55]) > 1.5
    np.testing.assert_allclose(concatenate(walk, turn, blend=0).shape, (120, walk.shape[1]))


def test_sequence_caption() -> None:
    from ikmo.motion_model.data.captions import sequence_caption

    joined = sequence_caption("A person walks forward.", "A person waves.")
    assert joined == "A person walks forward, then a person waves."
    assert sequence_caption("someone jogs", "I think they bow") == "someone jogs, then I think they bow"


def test_training_batches_concatenate_clips_with_a_joined_caption_embedded_on_the_fly() -> None:
    from ikmo.motion_model.errors import ConfigError
    from ikmo.motion_model.model.training import _make_batch
    from ikmo.motion_model.model_config import TrainConfig

    corpus, net, enc, emb = _walk_and_curve("A person walks in a curve.")
    cfg = TrainConfig(stage="control", batch_size=12, min_len=40, concat_prob=1.0)
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> torch.Tensor:
        calls.append(texts)
        return enc.encode(texts)

    x0, valid, text, _, crops = _make_batch(corpus, emb, net, cfg, 196, torch.Generator().manual_seed(0), encode)
    assert calls and all(", then " in t for t in calls[0])
    assert "a person walks forward, then a person walks in a curve." in calls[0]
    assert all(len(c) <= 196 for c in crops) and max(len(c) for c in crops) > 120  # longer than either clip
    assert torch.equal(valid.sum(-1), torch.tensor([len(c) for c in crops]))
    joined = calls[0].index("a person walks forward, then a person walks in a curve.")
    assert any(torch.allclose(t, enc.encode([calls[0][joined]])[0]) for t in text)
    with pytest.raises(ConfigError, match="text encoder"):
        _make_batch(corpus, emb, net, cfg, 196, torch.Generator().manual_seed(0))


def test_reverse_turns_a_forward_walk_into_a_backward_one() -> None:
    from ikmo.motion_model.control.align import facing_yaw
    from ikmo.motion_model.data.augment import reverse

    walk = _walk(61, speed=1.0, turn=0.0)
    back = reverse(walk)
    assert back.shape == walk.shape
    j = features_to_pose_frames(back)
    yaw = facing_yaw(j)
    facing = torch.stack([torch.sin(yaw), torch.cos(yaw)], -1)[:-1]
    vel = j[1:, 0, [0, 2]] - j[:-1, 0, [0, 2]]
    # the pelvis moves against the facing at the walk's speed
    along = (facing * vel).sum(-1) * FPS
    assert float(along.mean()) == pytest.approx(-1.0, abs=0.05)
    np.testing.assert_allclose(reverse(back).numpy(), walk.numpy(), atol=1e-3)  # twice: the walk again


def test_backward_caption_only_for_plain_forward_walks() -> None:
    from ikmo.motion_model.data.captions import backward_caption

    assert backward_caption("a person walks forward energetically.") == "a person walks backward energetically."
    lively = backward_caption("someone walks straight ahead in a lively way.")
    assert lively == "someone walks backward in a lively way."
    for text in ("a person walks forward and turns left.", "a person sits down.", "a person runs forward.",
                 "a person walks in a circle.", "someone walks forward, then waves."):
        assert backward_caption(text) is None, text


def test_training_batches_play_forward_walks_backwards_under_a_backward_caption() -> None:
    from ikmo.motion_model.model.training import _make_batch
    from ikmo.motion_model.model_config import TrainConfig

    corpus, net, enc, emb = _walk_and_curve("a person walks in a curve.")
    cfg = TrainConfig(stage="control", batch_size=16, min_len=40, reverse_prob=1.0)
    seen: list[str] = []
    *_, crops = _make_batch(corpus, emb, net, cfg, 196, torch.Generator().manual_seed(0),
                            lambda t: (seen.extend(t), enc.encode(t))[1])
    assert seen == ["a person walks backward."]  # the curve is never reversed: its words would be wrong
    forward = [float(c[:, 2].mean()) for c in crops]  # the body-frame forward velocity
    assert any(v < -0.03 for v in forward) and any(v > 0.03 for v in forward)
