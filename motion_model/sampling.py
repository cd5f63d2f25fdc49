"""The motion model's public API: `load_model` and `sample`. Stable; documented in docs/model.md.

    model = load_model()                                  # bundled weights, CPU
    motions = sample(model, ["a person walks forward"], [120], seed=0)
    motions[0].joints   # (120, 22, 3) float32, metres, global (HumanML3D frame)
    motions[0].features # (119, 263) float32, raw (denormalised) HumanML3D features

Lengths are pose frames T, 2 ≤ T ≤ max_len + 1 (MotionSpec caps T at MAX_FRAMES = 196); the model
works on the T − 1 feature rows of HumanML3D's representation, padded and masked per batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ikmo.motion_model.constraints import ControlSignals, TimedText
from ikmo.motion_model.control.align import JointsFn
from ikmo.motion_model.control.control_batch import ControlBatch
from ikmo.motion_model.control.footlock import lock_feet
from ikmo.motion_model.control.guidance import MotionOptimizer
from ikmo.motion_model.errors import ConstraintError
from ikmo.motion_model.model.bundled import weights_dir
from ikmo.motion_model.model.checkpoints import load_checkpoint
from ikmo.motion_model.model.diffusion import GaussianDiffusion, OnStep
from ikmo.motion_model.model.networks import IKMoNet
from ikmo.motion_model.model.text_encoder import CachedTextEncoder, build_text_encoder
from ikmo.motion_model.model_config import DiffusionConfig, FootLockConfig, ModelConfig, OptimizationConfig
from ikmo.motion_model.representation.features import features_to_pose_frames, joints_to_features
from ikmo.motion_model.representation.skeleton import FPS

log = logging.getLogger(__name__)

SEGMENT_FADE_FRAMES = 10  # 0.5 s cross-fade between timed texts


def default_joints_fn() -> JointsFn:
    return features_to_pose_frames


@dataclass
class MotionModel:
    """A loaded model: network, diffusion, text encoder, the device and the checkpoint's metadata."""

    net: IKMoNet
    diffusion: GaussianDiffusion
    text_encoder: CachedTextEncoder
    device: torch.device
    meta: dict[str, Any] = field(default_factory=dict)
    joints_fn: JointsFn = field(default_factory=default_joints_fn)
    optimization: OptimizationConfig = field(default_factory=OptimizationConfig)
    foot_lock: FootLockConfig = field(default_factory=FootLockConfig)

    @property
    def has_controlnet(self) -> bool:
        return self.net.control is not None

    @property
    def max_frames(self) -> int:
        return self.net.cfg.denoiser.max_len + 1


@dataclass
class Motion:
    """One generated motion.

    features: (T − 1, 263) float32 raw HumanML3D features (row i spans pose frames i → i+1).
    joints: (T, 22, 3) float32 global joint positions, metres, y up, starting at the origin facing +Z.
    fps: frames per second of `joints` (20).
    timings: seconds spent per stage of the batch this motion was generated in.
    windows: pose-frame ranges [start, end) of the model windows it was sampled in (`long_sampling`;
    empty from `sample`, whose motions are one window); seams: the frames where a window hands over
    to the next (`long_sampling.seam_frames`).
    """

    features: np.ndarray
    joints: np.ndarray
    fps: float = FPS
    text: str = ""
    seed: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    optimization_loss: list[float] = field(default_factory=list)
    windows: list[tuple[int, int]] = field(default_factory=list)
    seams: list[int] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return int(self.joints.shape[0])


def build_model(cfg: ModelConfig, diffusion: DiffusionConfig | None = None, device: torch.device | None = None,
                seed: int = 0, mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> MotionModel:
    """A freshly initialised (untrained) model, e.g. for tests or as the start of training."""
    device = device or torch.device("cpu")
    torch.manual_seed(seed)  # parameter init draws from the default generator; seed it explicitly
    net = IKMoNet(cfg)
    if mean is not None and std is not None:
        net.set_normalization(mean, std)
    net = net.to(device).eval()
    return MotionModel(net, GaussianDiffusion(diffusion or DiffusionConfig()), build_text_encoder(cfg.text_encoder),
                       device)


def load_model(weights: str | Path | None = None, device: torch.device | str = "cpu") -> MotionModel:
    """Load a model directory (model.safetensors + model.json); None = the bundled default weights."""
    device = torch.device(device)
    wdir = weights_dir(weights)
    net, dcfg, meta = load_checkpoint(wdir, device)
    net.eval()
    log.info("loaded motion model from %s (%s, ControlNet: %s)", wdir, net.cfg.text_encoder, net.control is not None)
    return MotionModel(net, GaussianDiffusion(dcfg), build_text_encoder(net.cfg.text_encoder, device), device,
                       meta={**meta, "weights_dir": str(wdir)})


def _check_inputs(model: MotionModel, texts: list[str], lengths: list[int],
                  controls: list[ControlSignals | None]) -> None:
    if len(texts) != len(lengths) or len(controls) != len(texts):
        raise ConstraintError(f"got {len(texts)} texts, {len(lengths)} lengths and {len(controls)} controls; "
                              "give one of each per motion")
    if not texts:
        raise ConstraintError("nothing to sample: give at least one text")
    for i, (T, c) in enumerate(zip(lengths, controls, strict=True)):
        if not 2 <= T <= model.max_frames:
            raise ConstraintError(f"motion {i}: length {T} frames is outside 2..{model.max_frames}")
        if c is not None and c.n_frames != T:
            raise ConstraintError(f"motion {i}: control signals have {c.n_frames} frames but the length is {T}")


def sample(
    model: MotionModel,
    texts: list[str],
    lengths: list[int],
    controls: list[ControlSignals | None] | None = None,
    *,
    seed: int = 0,
    steps: int | None = None,
    guidance_scale: float | None = None,
    optimization: OptimizationConfig | None = None,
    use_controlnet: bool = True,
    foot_lock: FootLockConfig | None = None,
    on_step: OnStep | None = None,
    timed_texts: list[list[TimedText]] | None = None,
    segment_fade: int = SEGMENT_FADE_FRAMES,
) -> list[Motion]:
    """Generate one motion per text, batched.

    texts: B captions; lengths: B pose-frame counts T_b; controls: B `ControlSignals` (T_b frames)
    or None. steps / guidance_scale default to the checkpoint's DiffusionConfig; `optimization`
    defaults to `model.optimization` (stage 1; it acts only where constraints exist);
    `use_controlnet=False` skips stage 2 (the ablation). `foot_lock` (default `model.foot_lock`)
    pins contact feet afterwards; the features are then re-derived from the locked joints, so
    `features` and `joints` always describe the same motion. Same inputs and seed → same motions.
    `on_step(step, total)` is called after each DDIM step. `timed_texts` (per motion, may be
    empty): texts that condition their own frames instead of the motion's text, cross-faded over
    `segment_fade` frames (`MotionDescription.timed_texts`); frames no segment covers follow the
    motion's text.
    """
    controls = controls if controls is not None else [None] * len(texts)
    _check_inputs(model, texts, lengths, controls)
    dev = model.device
    cfg = model.diffusion.cfg
    opt_cfg = optimization if optimization is not None else model.optimization
    steps = steps or cfg.sample_steps
    gs = cfg.guidance_scale if guidance_scale is None else guidance_scale
    B, Tmax = len(texts), max(lengths)
    L = Tmax - 1
    F = model.net.cfg.denoiser.feature_dim
    timings: dict[str, float] = {}

    valid = (torch.arange(L, device=dev)[None] < torch.tensor([T - 1 for T in lengths], device=dev)[:, None])
    t0 = time.perf_counter()
    text_emb, text_w = _text_conditions(model, texts, lengths, timed_texts, segment_fade)
    timings["text_s"] = time.perf_counter() - t0

    cb = ControlBatch.from_signals(controls, Tmax, dev)
    has_control = cb.any()
    net_control = cb if (has_control and use_controlnet and model.has_controlnet) else None
    hook = None
    if has_control and opt_cfg.enabled:
        hook = _TimedOptimizer(cb, opt_cfg, model.net.denormalize, model.joints_fn, model.net.normalize,
                               list(lengths))
    gen = torch.Generator().manual_seed(int(seed))

    t0 = time.perf_counter()
    with torch.inference_mode(False):
        x0 = model.diffusion.ddim_sample(model.net, (B, L, F), valid, text_emb, gen, steps=steps,
                                         guidance_scale=gs, control=net_control, x0_hook=hook, on_step=on_step,
                                         text_weights=text_w)
    total = time.perf_counter() - t0
    timings["optimization_s"] = hook.seconds if hook is not None else 0.0
    timings["diffusion_s"] = total - timings["optimization_s"]

    t0 = time.perf_counter()
    with torch.no_grad():
        feats = model.net.denormalize(x0)
        # One motion at a time: a shorter motion's last pose frame comes from its own last row's
        # velocities, not from the padding row after it (which decodes to the mean pose).
        joints = [model.joints_fn(feats[b:b + 1, : T - 1])[0].double().cpu().numpy() for b, T in enumerate(lengths)]
    feats_np = [feats[b, : T - 1].double().cpu().numpy() for b, T in enumerate(lengths)]
    settled = [T >= 3 and not bool(cb.pose_mask[b, T - 1].any()) for b, T in enumerate(lengths)]
    for b, T in enumerate(lengths):
        if settled[b]:  # (a keyframe on the last frame was met through the velocities this replaces)
            joints[b] = settle_last_frame(joints[b], keep_pelvis=bool(cb.traj_mask[b, T - 1].any()))
    timings["decode_s"] = time.perf_counter() - t0
    lock_cfg = foot_lock if foot_lock is not None else model.foot_lock
    t0 = time.perf_counter()
    for b, T in enumerate(lengths):
        if lock_cfg.enabled:
            joints[b] = lock_feet(joints[b], lock_cfg, cb.pose_mask[b, :T].cpu().numpy())
        if lock_cfg.enabled or settled[b]:  # the features of the joints as they now are, derived once
            feats_np[b] = joints_to_features(torch.from_numpy(joints[b]), canonical=False).numpy()
    timings["foot_lock_s"] = time.perf_counter() - t0
    out = []
    for b in range(B):
        out.append(Motion(features=np.asarray(feats_np[b], dtype=np.float32),
                          joints=joints[b].astype(np.float32), fps=FPS,
                          text=texts[b], seed=int(seed), timings=dict(timings),
                          optimization_loss=list(hook.history) if hook is not None else []))
    return out


def settle_last_frame(joints: np.ndarray, keep_pelvis: bool) -> np.ndarray:
    """The motion (T, J, 3) with its last pose frame continued from the two before it.

    Why: the last pose frame is decoded from the last feature row's joint velocities, which the model
    predicts apart from the positions; measured, the joints' speed into it was 3.9-4.4 m/s against a
    median 1.3 in every motion (a pop on the last frame of each clip). Here the body's pose relative to
    the pelvis moves on at its last speed; the pelvis too, unless `keep_pelvis` (a trajectory point
    placed it there). A keyframe on the last frame is met through those velocities: callers skip it.
    """
    out = np.array(joints, dtype=np.float64, copy=True)
    rel2, rel3 = out[-2] - out[-2, 0], out[-3] - out[-3, 0]  # the pose about the pelvis, two frames back
    pelvis = out[-1, 0] if keep_pelvis else 2 * out[-2, 0] - out[-3, 0]
    out[-1] = pelvis + 2 * rel2 - rel3
    return out.astype(joints.dtype, copy=False)


def segment_weights(n_rows: int, spans: list[tuple[int, int]], fade: int) -> np.ndarray:
    """Row weights (1 + K, n_rows) of the motion's text (row 0) and of K timed spans [start, end).

    Each span's indicator is smoothed by a centred box of `fade` rows, so neighbouring spans
    cross-fade linearly and every row's weights sum to 1; rows no span covers go to the text.
    """
    w = np.zeros((1 + len(spans), n_rows))
    for k, (a, b) in enumerate(spans, start=1):
        w[k, max(a, 0):max(min(b, n_rows), 0)] = 1.0
    if fade > 1 and spans:
        box = np.ones(fade) / fade
        left, right = fade // 2, fade - 1 - fade // 2
        for k in range(1, w.shape[0]):
            padded = np.pad(w[k], (left, right), mode="edge")
            w[k] = np.convolve(padded, box, mode="valid")
    w[0] = np.clip(1.0 - w[1:].sum(0), 0.0, 1.0)
    return w / w.sum(0, keepdims=True)


def _text_conditions(model: MotionModel, texts: list[str], lengths: list[int],
                     timed: list[list[TimedText]] | None, fade: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, D) text embeddings, or (B, K, D) with row weights (B, K, L) when timed texts are given."""
    dev = model.device
    timed = timed if timed is not None else [[] for _ in texts]
    if len(timed) != len(texts):
        raise ConstraintError(f"got {len(timed)} timed-text lists for {len(texts)} texts; give one (maybe empty) "
                              "per motion")
    if not any(timed):
        return model.text_encoder.encode(list(texts)).to(dev), None
    unique = list(dict.fromkeys([*texts, *(tt.text for tts in timed for tt in tts)]))
    emb = dict(zip(unique, model.text_encoder.encode(unique), strict=True))
    K = 1 + max(len(tts) for tts in timed)
    L = max(lengths) - 1
    text = torch.stack([emb[t] for t in texts])[:, None].repeat(1, K, 1)
    weights = torch.zeros(len(texts), K, L)
    for b, (tts, T) in enumerate(zip(timed, lengths, strict=True)):
        for k, tt in enumerate(tts, start=1):
            text[b, k] = emb[tt.text]
        w = segment_weights(T - 1, [(tt.start, tt.end) for tt in tts], fade)
        weights[b, : w.shape[0], : T - 1] = torch.from_numpy(w)
        weights[b, 0, T - 1:] = 1.0  # padding rows: any weights summing to 1
    return text.to(dev), weights.to(dev)


class _TimedOptimizer(MotionOptimizer):
    """MotionOptimizer that also accumulates its wall time."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.seconds = 0.0

    def __call__(self, x0: torch.Tensor, i: int, n: int) -> torch.Tensor:
        t0 = time.perf_counter()
        try:
            return super().__call__(x0, i, n)
        finally:
            self.seconds += time.perf_counter() - t0


def progress_logger(prefix: str = "sampling") -> Callable[[int, int], None]:
    """An `on_step` that logs progress at DEBUG level."""

    def _cb(step: int, total: int) -> None:
        log.debug("%s: step %d/%d", prefix, step, total)

    return _cb
