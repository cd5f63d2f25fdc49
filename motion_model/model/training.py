"""Training of the base denoiser (stage "base") and of the ControlNet + control encoders (stage
"control"), resumable, time-boxed (`max_minutes`) and distributable with torchrun (DDP, gloo on CPU).

Checkpoints: `<run_dir>/last/` (model.safetensors, optim.safetensors, model.json with the configs
and the training state). Randomness is drawn from a generator seeded by (seed, step, rank), so a
resumed run continues with exactly the batches it would have drawn without the interruption.

Control signals are sampled per motion as users give them (from the ground-truth joints of the
training crop): none; a trajectory (dense, every k-th frame, or 3–10 waypoints; xz or xyz);
1–5 keyframes at random frames with all joints, upper body only, lower body only, or a random
subset; or both a trajectory and keyframes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ikmo.motion_model.control.align import JointsFn, facing_yaw, rotate_y
from ikmo.motion_model.control.control_batch import ControlBatch
from ikmo.motion_model.control.guidance import constraint_losses
from ikmo.motion_model.data.augment import concatenate, reverse, time_warp
from ikmo.motion_model.data.captions import backward_caption, sequence_caption
from ikmo.motion_model.errors import ConfigError
from ikmo.motion_model.fileio import atomic_path, write_json
from ikmo.motion_model.model.checkpoints import load_checkpoint, load_optimizer, read_meta, save_checkpoint
from ikmo.motion_model.model.diffusion import GaussianDiffusion
from ikmo.motion_model.model.networks import ROOT_CHANNELS, IKMoNet, root_targets
from ikmo.motion_model.model.text_encoder import build_text_encoder
from ikmo.motion_model.model_config import ControlConfig, DiffusionConfig, ModelConfig, TrainConfig
from ikmo.motion_model.representation.features import feature_layout, features_to_joints, root_heading
from ikmo.motion_model.representation.skeleton import FPS, HUMANML3D_22

log = logging.getLogger(__name__)

EMA_FILE = "ema.safetensors"  # in a run's last/: the EMA of the trained weights (with --ema-decay)
CONCAT_BLEND = 10  # rows cross-faded at the seam of two concatenated crops (0.5 s)
UPPER_BODY = (0, 3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)
LOWER_BODY = (0, 1, 2, 4, 5, 7, 8, 10, 11)


# ----------------------------------------------------------------------------- corpus


@dataclass
class Clip:
    """One training clip: raw features (N, F) float32 and its captions."""

    name: str
    features: np.ndarray
    captions: list[str]


@dataclass
class Corpus:
    clips: list[Clip]
    mean: np.ndarray
    std: np.ndarray


def load_corpus(corpus_dir: Path, split: str = "train", min_rows: int = 8) -> Corpus:
    """One split of a HumanML3D-layout folder, read by `dataset.MotionTextDataset` (the one loader):
    every clip or captioned segment whole (raw features), with all captions sharing it."""
    from ikmo.motion_model.data.dataset import MotionTextDataset

    ds = MotionTextDataset(corpus_dir, split, train=False, min_frames=min_rows, max_frames=10**9)
    clips = []
    for i, group in enumerate(ds.entries):
        item = ds[i]
        raw = ds.normalizer.denormalize(item["features"].numpy()).astype(np.float32)
        clips.append(Clip(f"{item['id']}@{group[0].start}", raw, [e.caption for e in group]))
    return Corpus(clips, ds.normalizer.mean.astype(np.float32), ds.normalizer.std.astype(np.float32))


# ----------------------------------------------------------------------------- control sampling


def sample_controls(joints: torch.Tensor, n_frames: list[int], g: torch.Generator,
                    heading: torch.Tensor | None = None, heading_prob: float = 0.0) -> ControlBatch:
    """Random user-like constraints from ground-truth joints (B, T, 22, 3), T_b valid frames each.

    heading: (B, T) true facing yaw; with `heading_prob` > 0 a motion given a trajectory also gets
    its heading with that chance (on all its frames, or on one stretch of them, as the trajectory
    agent gives it on walking stretches).
    """
    B, T = joints.shape[:2]
    cb = ControlBatch.empty(B, T, joints.device)
    yaw = facing_yaw(joints)

    def rint(lo: int, hi: int) -> int:  # inclusive
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    for b, Tb in enumerate(n_frames):
        mode = float(torch.rand(1, generator=g))
        want_traj, want_pose = (mode >= 0.1 and mode < 0.4) or mode >= 0.7, mode >= 0.4
        if want_traj:
            kind = float(torch.rand(1, generator=g))
            if kind < 0.25:
                frames = torch.arange(Tb)
            elif kind < 0.5:
                frames = torch.arange(rint(0, 3), Tb, rint(2, 10))
            else:
                frames = torch.randperm(Tb, generator=g)[: rint(3, 10)]
            cb.traj[b, frames] = joints[b, frames, 0]
            cb.traj_mask[b, frames, 0] = True
            cb.traj_mask[b, frames, 2] = True
            if float(torch.rand(1, generator=g)) < 0.3:
                cb.traj_mask[b, frames, 1] = True
            if heading is not None and heading_prob > 0 and float(torch.rand(1, generator=g)) < heading_prob:
                lo, hi = 0, Tb
                if float(torch.rand(1, generator=g)) < 0.3:
                    lo = rint(0, Tb // 2)
                    hi = rint(lo + 2, Tb) if lo + 2 <= Tb else Tb
                cb.heading[b, lo:hi] = heading[b, lo:hi]
                cb.heading_mask[b, lo:hi] = True
        if want_pose:
            frames = torch.randperm(Tb, generator=g)[: rint(1, 5)]
            kind = float(torch.rand(1, generator=g))
            jm = torch.zeros(joints.shape[2], dtype=torch.bool)
            if kind < 0.5:
                jm[:] = True
            elif kind < 0.7:
                jm[list(UPPER_BODY)] = True
            elif kind < 0.9:
                jm[list(LOWER_BODY)] = True
            else:
                jm = torch.rand(joints.shape[2], generator=g) < 0.5
                jm[0] = True
            rel = joints[b, frames] - joints[b, frames, :1]
            cb.pose[b, frames] = rotate_y(rel, -yaw[b, frames])
            cb.pose_mask[b, frames] = jm
            cb.pose_weight[b, frames] = jm.float()
    return cb


def control_adherence_loss(pred: torch.Tensor, valid: torch.Tensor, net: IKMoNet, control: ControlBatch,
                           joints_fn: JointsFn) -> torch.Tensor:
    """Mean over the batch of L_traj + L_pose (m², stage 1's losses) of the predicted x0.

    pred: (B, L, F) normalised prediction; valid: (B, L). The x0 MSE spreads the constraint over 263
    normalised channels, where the few root channels that carry a trajectory weigh little, so a
    ControlNet trained on it alone learns to follow its hint very slowly (measured: 1,337 CPU steps
    left it worse than no control). Measuring the constraints on the recovered joints, as stage 1
    does at inference, gives the branch a direct signal. Padded rows are zeroed first so that they
    cannot move the integrated root of the valid frames (they come after them anyway).
    """
    joints = joints_fn(net.denormalize(pred) * valid[..., None], n_rows=valid.sum(-1))
    l_traj, l_pose = constraint_losses(joints, control)
    return (l_traj + l_pose).mean()


def root_target_loss(pred: torch.Tensor, valid: torch.Tensor, net: IKMoNet, control: ControlBatch) -> torch.Tensor:
    """Masked MSE (normalised units) between the predicted root channels and `root_targets`.

    pred: (B, L, F) normalised prediction; valid: (B, L). Why: a root target is the exact value of its
    channel, but in the x0 MSE those channels are 3 of 263 and the constraint loss reaches them only
    through the integrated path, so a ControlNet learns to copy them slowly (measured: after 1,200
    CPU steps with root inputs its one-step prediction was no closer to them than the base's).
    """
    r = root_targets(control, pred.shape[1], net.mean, net.std)
    m = r[..., ROOT_CHANNELS: 2 * ROOT_CHANNELS] * valid[..., None]
    err = m * (pred[..., :ROOT_CHANNELS] - r[..., :ROOT_CHANNELS]) ** 2
    return err.sum() / m.sum().clamp(min=1)


def geometric_losses(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                     foot_rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MDM's velocity and foot-contact losses on the joints of a predicted motion, in m²/s².

    pred, target: (B, L, F) raw (denormalised) HumanML3D features, predicted and true; valid: (B, L).
    Returns (L_vel, L_foot): L_vel is the squared difference between predicted and true joint velocities
    (summed over x, y, z, averaged over the 22 joints and the frames where both rows are valid); L_foot the
    predicted ankles' and toes' squared speed where the *true* motion's contact label says that foot is
    planted. Why: in the x0 MSE a frame-to-frame wobble of a few millimetres costs almost nothing, yet
    differentiated twice it is the sampler's jitter (generated jerk is 10-20x the real clips'), and a foot
    gliding 1 cm per frame is skating that only the foot lock hid. In metres per second, so the weights
    mean the same under any corpus normalisation. `foot_rows` (B,) bool: the motions L_foot counts
    (default all; `TrainConfig.foot_loss_max_t` passes the low-noise ones).
    """
    lay = feature_layout()
    both = (valid[:, 1:] & valid[:, :-1]).to(pred.dtype)  # (B, L-1): a velocity between two valid rows
    jp = features_to_joints(pred * valid[..., None])  # (B, L, 22, 3)
    with torch.no_grad():
        jt = features_to_joints(target * valid[..., None])
        contact = (target[:, :-1, lay.contacts] > 0.5).to(pred.dtype) * both[..., None]  # (B, L-1, 4)
        if foot_rows is not None:
            contact = contact * foot_rows.to(pred.dtype)[:, None, None]
    vp = (jp[:, 1:] - jp[:, :-1]) * FPS  # (B, L-1, 22, 3) m/s
    vt = (jt[:, 1:] - jt[:, :-1]) * FPS
    l_vel = ((vp - vt).square().sum(-1).mean(-1) * both).sum() / both.sum().clamp(min=1)
    feet = list(HUMANML3D_22.feet_left) + list(HUMANML3D_22.feet_right)
    foot_speed2 = vp[:, :, feet].square().sum(-1)  # (B, L-1, 4) in the order of the contact labels
    l_foot = (foot_speed2 * contact).sum() / contact.sum().clamp(min=1)
    return l_vel, l_foot


def swap_roots(x0: torch.Tensor, control: ControlBatch, net: IKMoNet, prob: float, g: torch.Generator,
               velocities: bool = False) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """An `xt_hook` that gives chosen motions another motion's root motion in x_t.

    x0: (B, L, F) normalised clean batch. Why: x_t in training is noised ground truth, whose root agrees
    with the root targets, so at low noise a ControlNet can copy the root from x_t and never learns to
    take it from the targets; at sampling x_t carries the earlier steps' errors, which then stay
    (measured: one-step root error 0.02 at t = 200, yet 0.8 m off the path after 10 DDIM steps).
    `velocities` swaps the joints' local velocities too: they carry the root's speed (a joint's
    displacement in the root frame includes the root's), and a ControlNet trained with the root channels
    swapped alone read its speed there (measured on 16 test windows, one step at t = 300: path error
    0.11 m with x_t's root swapped, 1.84 m with its local velocities swapped as well). Swapping them
    too was tried and is off by default: the ControlNet then read the speed from the poses instead,
    which classifier-free guidance amplifies, and the sample's speed ran away (docs/model.md).
    A motion is chosen with chance `prob` among those that have root targets (a path with its heading);
    its swapped channels in x_t become sqrt(ᾱ_t)·x0_other + the same noise, x0_other the next motion's.
    """
    has = root_targets(control, x0.shape[1], net.mean, net.std)[..., ROOT_CHANNELS + 1].amax(-1) > 0  # (B,)
    pick = has & (torch.rand(x0.shape[0], generator=g) < prob).to(x0.device)
    channels = torch.arange(ROOT_CHANNELS)
    if velocities:
        lv = feature_layout().local_vel
        channels = torch.cat([channels, torch.arange(lv.start, lv.stop)])
    channels = channels.to(x0.device)
    other = torch.roll(x0[..., channels], 1, dims=0) - x0[..., channels]

    def hook(x_t: torch.Tensor, sqrt_ab: torch.Tensor) -> torch.Tensor:
        out = x_t.clone()
        out[..., channels] = x_t[..., channels] + sqrt_ab * other * pick[:, None, None]
        return out

    return hook


# ----------------------------------------------------------------------------- training loop


def resolve_device(name: str = "auto") -> torch.device:
    """`auto`: the GPU when torch sees one (under torchrun the rank's LOCAL_RANK GPU), else the CPU.

    Any other name (`cpu`, `cuda`, `cuda:1`) is taken as given; training then runs there.
    """
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 131 + rank)


def _crop(clip: Clip, L: int, cfg: TrainConfig, g: torch.Generator) -> torch.Tensor:
    """Raw feature rows (L', F) of `clip`, L' ≤ L: a random crop, time-warped with chance
    `cfg.time_warp_prob` (then L' may be shorter: the clip must cover the crop at that rate)."""
    N = len(clip.features)
    rate = 1.0
    if cfg.time_warp_prob > 0 and float(torch.rand(1, generator=g)) < cfg.time_warp_prob:
        rate = math.exp((2 * float(torch.rand(1, generator=g)) - 1) * math.log(cfg.time_warp_max))
        L = max(1, min(L, math.floor(N / rate)))
    n_src = min(N, math.ceil(L * rate))
    start = int(torch.randint(0, N - n_src + 1, (1,), generator=g))
    crop = torch.from_numpy(clip.features[start: start + n_src])
    return time_warp(crop, rate, L) if rate != 1.0 else crop


def _make_batch(corpus: Corpus, caption_emb: dict[str, torch.Tensor], net: IKMoNet, cfg: TrainConfig, max_rows: int,
                g: torch.Generator, encode: Callable[[list[str]], torch.Tensor] | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """x0 (B, L, F) normalised, valid (B, L), text (B, D), text_keep (B,), raw feature crops.

    With chance `cfg.concat_prob` a crop is two clips played one after the other (`augment.concatenate`)
    with the caption "<first>, then <second>"; with chance `cfg.reverse_prob` a plain forward walk is
    played backwards (`augment.reverse`) as "... walks backward ...". Such captions are not in
    `caption_emb`: `encode` embeds them."""
    B = cfg.batch_size
    idx = torch.randint(0, len(corpus.clips), (B,), generator=g).tolist()
    crops, caps = [], []

    def caption(c: Clip) -> str:
        return c.captions[int(torch.randint(0, len(c.captions), (1,), generator=g))]

    for i in idx:
        clip = corpus.clips[i]
        N = len(clip.features)
        hi = min(N, max_rows)
        lo = min(hi, max(cfg.min_len - 1, 1))
        L = int(torch.randint(lo, hi + 1, (1,), generator=g))
        if cfg.long_crop_prob > 0 and float(torch.rand(1, generator=g)) < cfg.long_crop_prob:
            L = hi
        # (Draw order as before these options: with their chances at 0 the batches of older runs stay.)
        if cfg.concat_prob > 0 and float(torch.rand(1, generator=g)) < cfg.concat_prob:
            other = corpus.clips[int(torch.randint(0, len(corpus.clips), (1,), generator=g))]
            total = max_rows if float(torch.rand(1, generator=g)) < 0.5 else max(L, cfg.min_len)
            la = int(torch.randint(total // 3, 2 * total // 3 + 1, (1,), generator=g))
            first = _crop(clip, min(la, N), cfg, g)
            second = _crop(other, min(total - len(first) + CONCAT_BLEND, len(other.features)), cfg, g)
            crops.append(concatenate(first, second, CONCAT_BLEND)[:max_rows])
            caps.append(sequence_caption(caption(clip), caption(other)))
        else:
            crop, cap = _crop(clip, L, cfg, g), caption(clip)
            back = backward_caption(cap) if cfg.reverse_prob > 0 else None
            if back is not None and float(torch.rand(1, generator=g)) < cfg.reverse_prob:
                crop, cap = reverse(crop), back
            crops.append(crop)
            caps.append(cap)
    Lmax = max(len(c) for c in crops)
    F = crops[0].shape[1]
    x0 = torch.zeros(B, Lmax, F)
    valid = torch.zeros(B, Lmax, dtype=torch.bool)
    for b, c in enumerate(crops):
        x0[b, : len(c)] = net.normalize(c)
        valid[b, : len(c)] = True
    missing = sorted({c for c in caps if c not in caption_emb})
    if missing and encode is None:
        raise ConfigError("concatenated or reversed crops need a text encoder for their captions (pass encode)")
    fresh = dict(zip(missing, encode(missing), strict=True)) if missing and encode is not None else {}
    text = torch.stack([caption_emb[c] if c in caption_emb else fresh[c] for c in caps])
    keep = torch.rand(B, generator=g) >= net.cfg.denoiser.cond_drop_prob
    return x0, valid, text, keep, crops


def _encode_captions(captions: list[str], encoder: Any, cache_dir: Path, write: bool = True
                     ) -> dict[str, torch.Tensor]:
    """Embeddings of all captions, cached on disk per (encoder, caption set): encoding a corpus with
    MiniLM takes minutes on a busy CPU, and every resumed chunk and control run needs the same ones."""
    key = hashlib.sha256("\n".join([encoder.name, *captions]).encode()).hexdigest()[:16]
    path = cache_dir / f"{encoder.name.replace(':', '_')}-{key}.safetensors"
    if path.is_file():
        embs = load_file(str(path))["embeddings"]
        if embs.shape[0] == len(captions):
            return dict(zip(captions, embs, strict=True))
    embs = torch.cat([encoder.encode(captions[i: i + 256]) for i in range(0, len(captions), 256)])
    if write:  # one writer (rank 0): the temporary name is shared
        cache_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file({"embeddings": embs.contiguous()}, str(tmp))
    return dict(zip(captions, embs, strict=True))


def _extra_loss(cfg: TrainConfig, net: IKMoNet, x0: torch.Tensor, valid: torch.Tensor, control: ControlBatch | None,
                joints_fn: JointsFn, parts: dict[str, list[float]]
                ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """The terms added to the x0 MSE for one batch (None when every weight is 0): the constraint and
    root losses of the control stage, the velocity and foot-contact losses of either stage. Each
    term's value is appended to `parts[name]` for the training log."""
    terms = []
    if control is not None and cfg.control_loss_weight > 0:
        terms.append(("constraint", cfg.control_loss_weight,
                      lambda p: control_adherence_loss(p, valid, net, control, joints_fn)))
    if control is not None and cfg.root_loss_weight > 0:
        terms.append(("root", cfg.root_loss_weight, lambda p: root_target_loss(p, valid, net, control)))
    if not terms and cfg.vel_loss_weight == 0 and cfg.foot_loss_weight == 0:
        return None

    def extra(pred: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        total = pred.new_zeros(())
        for name, w, fn in terms:
            value = fn(pred)
            parts.setdefault(name, []).append(float(value.detach()))
            total = total + w * value
        if cfg.vel_loss_weight > 0 or cfg.foot_loss_weight > 0:
            low = None if cfg.foot_loss_max_t is None else t <= cfg.foot_loss_max_t
            l_vel, l_foot = geometric_losses(net.denormalize(pred), net.denormalize(x0), valid, low)
            parts.setdefault("vel", []).append(float(l_vel.detach()))
            parts.setdefault("foot", []).append(float(l_foot.detach()))
            total = total + cfg.vel_loss_weight * l_vel + cfg.foot_loss_weight * l_foot
        return total

    return extra


def train(
    corpus_dir: Path,
    run_dir: Path,
    train_cfg: TrainConfig,
    model_cfg: ModelConfig | None = None,
    diffusion_cfg: DiffusionConfig | None = None,
    *,
    init_from: Path | None = None,
    control_cfg: ControlConfig | None = None,
    resume: bool = False,
    export_to: Path | None = None,
    joints_fn: JointsFn | None = None,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Run (or continue) one training stage until `max_steps` or `max_minutes`; returns a summary.

    Stage "base": a fresh `IKMoNet(model_cfg)` (or `init_from`) learns x0 prediction.
    Stage "control": the model of `init_from` (a base checkpoint) gets a ControlNet (`control_cfg`)
    copied from its base; the base is frozen. Under torchrun every rank runs this; rank 0 writes.
    """
    device = device or torch.device("cpu")
    torch.set_num_threads(train_cfg.num_threads)
    if os.environ.get("WORLD_SIZE", "1") != "1" and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank, world = _dist_info()
    run_dir = Path(run_dir)
    last = run_dir / "last"
    corpus = load_corpus(corpus_dir, "train")
    if joints_fn is None:
        from ikmo.motion_model.representation.features import features_to_pose_frames

        joints_fn = features_to_pose_frames

    meta: dict[str, Any] = {}
    if resume and (last / "model.safetensors").is_file():
        net, dcfg, meta = load_checkpoint(last, device)
        other = meta.get("train", {}).get("stage", train_cfg.stage)
        if other != train_cfg.stage:
            # A checkpoint of the other stage (e.g. the bundle, whose "train" is its ControlNet's, under a
            # base run): its weights are the start; its step count, history, wall time and optimizer are
            # that stage's, so they are kept aside under "<stage>_train" instead of being continued.
            kept = {k: v for k, v in meta.items() if k not in ("train", "optimizer")}
            meta = {**kept, f"{other}_train": meta["train"]}
            start_step = 0
            log.info("starting a %s run from %s, a %s checkpoint: step 0, fresh optimizer", train_cfg.stage, last,
                     other)
        else:
            start_step = int(meta.get("train", {}).get("step", 0))
            log.info("resuming %s at step %d", last, start_step)
    else:
        start_step = 0
        if init_from is not None:
            net, dcfg, meta_init = load_checkpoint(init_from, device)
            meta = {"init_from": str(init_from), "base_train": meta_init.get("train")}
        else:
            if train_cfg.stage == "control":
                raise ConfigError("control training starts from a base checkpoint: pass --init BASE_DIR")
            torch.manual_seed(train_cfg.seed)
            net = IKMoNet(model_cfg or ModelConfig()).to(device)
            net.set_normalization(torch.from_numpy(corpus.mean), torch.from_numpy(corpus.std))
            dcfg = diffusion_cfg or DiffusionConfig()
        if train_cfg.stage == "control" and net.control is None:
            torch.manual_seed(train_cfg.seed)
            net.add_control(control_cfg or ControlConfig())
        elif train_cfg.stage == "control" and net.control is not None and control_cfg is not None:
            wider = net.control.cfg.model_copy(update={
                "traj_features": "root" if "root" in (control_cfg.traj_features, net.control.cfg.traj_features)
                else "xyz", "output_head": control_cfg.output_head or net.control.cfg.output_head})
            if wider != net.control.cfg:
                log.info("widening the ControlNet of %s: %s → %s", init_from, net.control.cfg, wider)
                net.widen_control_inputs(wider)
    if ((train_cfg.root_loss_weight > 0 or train_cfg.root_swap_prob > 0) and net.control is not None
            and net.control.cfg.traj_features != "root"):
        raise ConfigError("--root-loss-weight and --root-swap-prob need a ControlNet with root inputs: pass "
                          "--traj-features root")
    trainable: torch.nn.Module
    if train_cfg.stage == "control":
        if net.control is None:
            raise ConfigError(f"{last} holds no ControlNet; resume a control run or start from --init")
        trainable = net.control
    else:
        trainable = net.base
    for p in net.parameters():
        p.requires_grad_(False)
    for p in trainable.parameters():
        p.requires_grad_(True)
    net.train()
    if train_cfg.stage == "control":
        net.base.eval()  # frozen: no dropout in the branch the ControlNet learns to steer
    model: torch.nn.Module = DistributedDataParallel(net) if world > 1 else net
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=train_cfg.lr,
                            weight_decay=train_cfg.weight_decay)
    if start_step and load_optimizer(last, net, opt, meta):
        log.info("optimizer state restored")
    ema = _make_ema(trainable, train_cfg.ema_decay, last / EMA_FILE if start_step else None)
    diffusion = GaussianDiffusion(dcfg)
    text_enc = build_text_encoder(net.cfg.text_encoder, device)
    captions = sorted({c for clip in corpus.clips for c in clip.captions})
    t0 = time.perf_counter()
    caption_emb = _encode_captions(captions, text_enc, run_dir.parent / ".text_cache", write=rank == 0)
    log.info("rank %d/%d: %d clips, %d captions encoded in %.1fs", rank, world, len(corpus.clips), len(captions),
             time.perf_counter() - t0)

    prev_wall = float(meta.get("train", {}).get("wall_s", 0.0)) if start_step else 0.0
    t_start = time.perf_counter()
    max_rows = net.cfg.denoiser.max_len
    losses: list[float] = []
    parts: dict[str, list[float]] = {}  # the extra loss terms' values since the last log line
    step = start_step
    history: list[dict[str, float]] = list(meta.get("train", {}).get("history", [])) if start_step else []

    def save(final: bool) -> None:
        if rank != 0:
            return
        wall = prev_wall + time.perf_counter() - t_start
        state = {"stage": train_cfg.stage, "step": step, "wall_s": round(wall, 1), "world_size": world,
                 "config": train_cfg.model_dump(), "history": history[-200:], "corpus": str(corpus_dir)}
        extra = {k: v for k, v in meta.items() if k not in ("model", "diffusion", "train", "optimizer")}
        save_checkpoint(last, net, dcfg, {**extra, "train": state}, opt)
        write_json(run_dir / "train_config.json", train_cfg.model_dump())
        if ema is not None:
            with atomic_path(last / EMA_FILE) as tmp:
                save_file({k: v.detach().contiguous().cpu() for k, v in ema.state_dict().items()}, str(tmp))
        if final and export_to is not None:
            if ema is None:
                save_checkpoint(Path(export_to), net, dcfg, {**extra, "train": state})
            else:  # the inference weights are the EMA's; the run keeps training its own
                own = {k: v.clone() for k, v in trainable.state_dict().items()}
                trainable.load_state_dict(ema.module.state_dict())
                save_checkpoint(Path(export_to), net, dcfg, {**extra, "train": state,
                                                             "ema_decay": train_cfg.ema_decay})
                trainable.load_state_dict(own)
            log.info("exported weights to %s", export_to)

    stop_reason = "max_steps"
    while step < train_cfg.max_steps:
        if train_cfg.max_minutes is not None:
            elapsed = torch.tensor([(time.perf_counter() - t_start) / 60.0])
            if world > 1:  # all ranks must agree to stop on the same step
                dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
            if float(elapsed) >= train_cfg.max_minutes:
                stop_reason = "max_minutes"
                break
        g = _step_generator(train_cfg.seed, step, rank)
        x0, valid, text, keep, crops = _make_batch(corpus, caption_emb, net, train_cfg, max_rows, g,
                                                   text_enc.encode)
        x0, valid, text, keep = x0.to(device), valid.to(device), text.to(device), keep.to(device)
        control = None
        if train_cfg.stage == "control":
            with torch.no_grad():
                raw = net.denormalize(x0)
                joints = joints_fn(raw, n_rows=valid.sum(-1))
                heading = root_heading(raw) if train_cfg.heading_prob > 0 else None
            control = sample_controls(joints, [len(c) + 1 for c in crops], g, heading, train_cfg.heading_prob)
        extra = _extra_loss(train_cfg, net, x0, valid, control, joints_fn, parts)
        hook = (swap_roots(x0, control, net, train_cfg.root_swap_prob, g, train_cfg.root_swap_velocities)
                if control is not None and train_cfg.root_swap_prob > 0 else None)
        loss = diffusion.training_loss(model, x0, valid, text, keep, g, control, extra, hook,
                                       rollout_prob=train_cfg.rollout_prob, rollout_steps=train_cfg.rollout_steps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable.parameters(), train_cfg.grad_clip)
        opt.step()
        if ema is not None:
            ema.update_parameters(trainable)
        step += 1
        losses.append(loss.detach().item())
        if step % train_cfg.log_every == 0 or step == train_cfg.max_steps:
            mean_loss = sum(losses) / len(losses)
            terms = {k: round(sum(v) / len(v), 5) for k, v in parts.items() if v}
            history.append({"step": step, "loss": round(mean_loss, 5), **terms})
            if rank == 0:
                log.info("%s step %d loss %.4f%s (%.2fs/step, rank 0's batch)", train_cfg.stage, step, mean_loss,
                         "".join(f" {k} {v:.4f}" for k, v in terms.items()),
                         (time.perf_counter() - t_start) / max(1, step - start_step))
            losses.clear()
            parts.clear()
        if step % train_cfg.ckpt_every == 0:
            save(final=False)
    save(final=True)
    if world > 1:
        dist.barrier()
    wall = time.perf_counter() - t_start
    summary = {"stage": train_cfg.stage, "start_step": start_step, "step": step, "stop": stop_reason,
               "wall_s": round(wall, 1), "last_loss": history[-1]["loss"] if history else math.nan,
               "checkpoint": str(last), "world_size": world}
    log.info("training stopped (%s): %s", stop_reason, summary)
    return summary


def _make_ema(trainable: torch.nn.Module, decay: float, resume_from: Path | None) -> AveragedModel | None:
    """An exponential moving average of `trainable`'s weights (`torch.optim.swa_utils`), or None for
    decay 0; restored from `resume_from` when that file exists. Why: with batch 16 the ControlNet's
    weights jitter between checkpoints 100 steps apart (its error off a path moved 0.8 ↔ 1.8 m), and
    the average is what should be sampled."""
    if decay <= 0:
        return None
    ema = AveragedModel(trainable, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)
    if resume_from is not None:
        if resume_from.is_file():
            ema.load_state_dict(load_file(str(resume_from)))
            log.info("EMA restored from %s", resume_from)
        else:
            log.info("no %s: the EMA starts from the resumed weights", resume_from)
    return ema


def read_train_state(ckpt_dir: Path) -> dict[str, Any]:
    """The training state stored in a checkpoint's model.json (step, wall time, loss history)."""
    return dict(read_meta(ckpt_dir).get("train", {}))
