"""Motions longer than one model window (196 frames, 9.8 s): overlapping windows, each in-painted
from the end of the one before.

    motion = sample_long(model, "a person walks forward", 600, control, seed=0)   # 30 s
    motion.joints    # (600, 22, 3) float32, metres, global; motion.windows: [(0, 196), (156, 352), ...]

The network only ever sees windows of at most `model.max_frames` pose frames. Window k covers
pose frames [a_k, e_k) of the whole motion, a_k = k·(W − overlap); it starts inside the previous
window, and the overlap's first `hold` frames are *held*: the previous window's frames (already
stitched, in world coordinates) become constraints of this window — pelvis position (floor
plane) and facing at every held frame, the full body pose every `HOLD_POSE_EVERY` frames — met by the same
stage 1 as any keyframe or trajectory (gradient steps, then the exact projection), while the
model in-paints what follows. The rest of
the overlap (`overlap − hold` frames) is cross-faded from the previous window to the new one with
a cosine ramp, so the hand-over has no visible seam (measured: `motion_metrics.seam_velocity_jump`).

Each window is sampled in its own frame: the network's motions start at the origin facing +Z, so
the window's constraints are moved into the frame whose origin is the stitched pelvis at a_k (on
the floor) and whose +Z is the body's facing there, and the window's joints are moved back. The
whole request's constraints (trajectory, facing, keyframes, timed texts of the description's
segments) are cut per window in the same way, so a path or a keyframe anywhere in the motion is met
where it falls. Feet are locked once, over the whole stitched motion, and the features re-derived
from the locked joints. Window k's seed is derived from the request's seed (`window_seed`): the
same seed gives the same long motion. Time and memory grow linearly with the length: windows are
sampled one after the other, each the same size.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TypedDict, Unpack

import numpy as np
import torch

from ikmo.motion_model.constraints import N_JOINTS, WINDOW_OVERLAP_FRAMES, ControlSignals, TimedText
from ikmo.motion_model.control.align import facing_yaw, rotate_y
from ikmo.motion_model.control.footlock import lock_feet
from ikmo.motion_model.control.projection import smoothed_facing
from ikmo.motion_model.errors import ConstraintError
from ikmo.motion_model.limits import MAX_SEED
from ikmo.motion_model.model.diffusion import OnStep
from ikmo.motion_model.model_config import FootLockConfig, OptimizationConfig
from ikmo.motion_model.representation.features import joints_to_features
from ikmo.motion_model.representation.skeleton import FPS
from ikmo.motion_model.sampling import Motion, MotionModel, sample

log = logging.getLogger(__name__)

OVERLAP_FRAMES = WINDOW_OVERLAP_FRAMES  # 2 s shared by consecutive windows
HOLD_FRAMES = 20  # the overlap's first 1 s: the previous window's frames, held as constraints
HOLD_POSE_EVERY = 5  # held frames with the whole body pose as a keyframe (pelvis and facing: every frame)
_SEED_STRIDE = 1_000_003  # a prime: window k's seed = seed + k·stride (mod 2^32)


class SampleOptions(TypedDict, total=False):
    """The knobs of `sampling.sample` that `sample_long` passes on to every window."""

    steps: int | None
    guidance_scale: float | None
    optimization: OptimizationConfig | None
    use_controlnet: bool
    segment_fade: int


@dataclass(frozen=True)
class Window:
    """Pose frames [start, end) of the whole motion; the first `held` frames are held to the previous
    window, the next `fade` are cross-faded from it (both 0 for the first window)."""

    start: int
    end: int
    held: int = 0
    fade: int = 0

    @property
    def n_frames(self) -> int:
        return self.end - self.start


def plan_windows(n_frames: int, window: int, overlap: int = OVERLAP_FRAMES, hold: int = HOLD_FRAMES,
                 given: int = 0) -> list[Window]:
    """The windows of an `n_frames` motion: one when it fits, else stride `window − overlap`, the last
    window ending at `n_frames` (shorter than the others, never shorter than the overlap + 1).

    given: frames already there (a motion being continued, `MotionPrefix`): the first window then
    starts `overlap` frames before their end and holds and cross-fades like any later window.
    """
    if n_frames <= window and not given:
        return [Window(0, n_frames)]
    if not 0 < hold < overlap < window:
        raise ConstraintError(f"window planning needs 0 < hold ({hold}) < overlap ({overlap}) < window ({window})")
    if given and not overlap <= given < n_frames:
        raise ConstraintError(f"a motion can continue one of {overlap} to {n_frames - 1} frames, not {given}; "
                              "continue a longer motion, or make this one longer")
    stride = window - overlap
    if given:
        n = math.ceil((n_frames - given) / stride)
        starts = [given - overlap + k * stride for k in range(n)]
        return [Window(a, min(a + window, n_frames), held=hold, fade=overlap - hold) for a in starts]
    n = math.ceil((n_frames - overlap) / stride)
    out = [Window(0, window)]
    for k in range(1, n):
        a = k * stride
        out.append(Window(a, min(a + window, n_frames), held=hold, fade=overlap - hold))
    return out


def kept_prefix_frames(given: int, overlap: int = OVERLAP_FRAMES, hold: int = HOLD_FRAMES) -> int:
    """How many of a continued motion's `given` frames stay exactly as they were: all but the last
    `overlap − hold`, which are cross-faded into the continuation (as between any two windows)."""
    return given - (overlap - hold)


def seam_frames(windows: list[Window]) -> list[int]:
    """Frames where the motion's source changes: the end of each held part and of each cross-fade
    (a continued motion's first window hands over from the motion it continues)."""
    out: list[int] = []
    for w in windows:
        if w.held:
            out += [w.start + w.held, w.start + w.held + w.fade]
    return out


def window_seed(seed: int, k: int) -> int:
    """Seed of window k (window 0: the request's own seed, so a one-window motion is `sample`'s)."""
    return (int(seed) + k * _SEED_STRIDE) % (MAX_SEED + 1)


def window_texts(timed: list[TimedText], w: Window) -> list[TimedText]:
    """The timed texts that fall inside window w, in its own frame numbers."""
    out = []
    for tt in timed:
        a, b = max(tt.start - w.start, 0), min(tt.end - w.start, w.n_frames)
        if b > a:
            out.append(TimedText(text=tt.text, start=a, end=b))
    return out


def _to_local(points: torch.Tensor, origin: torch.Tensor, yaw: float) -> torch.Tensor:
    """World (..., 3) → the window's frame (origin on the floor at the window's first pelvis, +Z its facing)."""
    return rotate_y(points - origin, torch.tensor(-yaw, dtype=points.dtype))


def _to_world(points: torch.Tensor, origin: torch.Tensor, yaw: float) -> torch.Tensor:
    return rotate_y(points, torch.tensor(yaw, dtype=points.dtype)) + origin


def window_control(control: ControlSignals | None, w: Window, held: torch.Tensor | None, origin: torch.Tensor,
                   yaw: float, align_yaw: bool = True) -> ControlSignals | None:
    """Window w's constraints in its own frame: the request's frames [w.start, w.end) plus the held frames.

    control: the whole motion's constraints (T frames, world) or None; held: (w.held, 22, 3) stitched
    world joints of the held frames, or None; origin: (3,) the frame's origin (y = 0); yaw: its facing.
    """
    n = w.n_frames
    origin = origin.float()
    traj = torch.zeros(n, 3)
    traj_mask = torch.zeros(n, 3, dtype=torch.bool)
    pose = torch.zeros(n, N_JOINTS, 3)
    pose_mask = torch.zeros(n, N_JOINTS, dtype=torch.bool)
    pose_weight = torch.zeros(n, N_JOINTS)
    heading = torch.zeros(n)
    heading_mask = torch.zeros(n, dtype=torch.bool)
    if control is not None:
        sl = slice(w.start, w.end)
        traj = _to_local(control.traj[sl].float().cpu(), origin, yaw)
        traj_mask = control.traj_mask[sl].cpu().clone()
        pose = control.pose[sl].float().cpu().clone()
        if not align_yaw:  # a pose that must face the world's +Z faces −yaw in the window's frame
            pose = rotate_y(pose, torch.tensor(-yaw))
        pose_mask = control.pose_mask[sl].cpu().clone()
        pose_weight = control.pose_weight[sl].float().cpu().clone()
        heading = control.heading[sl].float().cpu() - yaw
        heading_mask = control.heading_mask[sl].cpu().clone()
    if held is not None and w.held:
        h = w.held
        local = _to_local(held.float(), origin, yaw)  # (h, 22, 3)
        # The pelvis in the floor plane only: holding its height too let each window start a little
        # lower than the one before, which compounds (30 s walk, 3 seeds: median pelvis 0.89 m →
        # 0.82 m, foot skating after the rig 0.12 → 0.16); the cross-fade joins the heights instead.
        traj[:h] = local[:, 0]
        traj_mask[:h, 0] = traj_mask[:h, 2] = True
        rel = local - local[:, :1]
        rel = rotate_y(rel, -facing_yaw(local)) if align_yaw else rel
        # The body pose every HOLD_POSE_EVERY frames (ending on the last held frame), not at every
        # frame: the projection blends each keyframe's change over ±8 frames, and keyframes packed
        # closer make that blend's linear system near-singular (measured: joints thrown 100 km off
        # just after the held frames). Between them the pelvis and the facing are held at every frame.
        kf = torch.arange(h - 1, -1, -HOLD_POSE_EVERY)
        pose[kf], pose_mask[kf], pose_weight[kf] = rel[kf], True, 1.0
        facing = torch.as_tensor(smoothed_facing(local.double().numpy()), dtype=torch.float32)
        if bool(heading_mask[h:].any()):
            # One continuous heading curve: the request's (unwrapped over the whole path) is moved by
            # whole turns to continue from the held facing, or the projection would spin the body.
            first = int(torch.nonzero(heading_mask[h:])[0]) + h
            heading[h:] -= 2 * math.pi * round(float(heading[first] - facing[-1]) / (2 * math.pi))
        heading[:h], heading_mask[:h] = facing, True
    out = ControlSignals(traj, traj_mask, pose, pose_mask, pose_weight, heading, heading_mask)
    return None if out.is_empty() else out


def cross_fade(previous: np.ndarray, new: np.ndarray) -> np.ndarray:
    """(F, 22, 3) frames going from `previous` to `new` with a cosine ramp (weights strictly inside 0..1).

    previous, new: (F, 22, 3) world joints. The pelvis is blended in the world, the facing yaw along
    the shorter arc, and the body pose in its own facing frame (pelvis at the origin, facing +Z), then
    turned to the blended facing: blending world joints of two bodies that face apart shrinks the body
    between them (measured: windows facing 160° apart at a keyframe in the fade gave that keyframe a
    0.13 m error where each window alone met it within 0.04 m).
    """
    F = previous.shape[0]
    w = 0.5 - 0.5 * np.cos(np.pi * (np.arange(F) + 1) / (F + 1))
    prev_t, new_t = torch.as_tensor(previous, dtype=torch.float64), torch.as_tensor(new, dtype=torch.float64)
    yaw_prev, yaw_new = facing_yaw(prev_t), facing_yaw(new_t)
    turn = torch.remainder(yaw_new - yaw_prev + math.pi, 2 * math.pi) - math.pi
    ramp = torch.as_tensor(w)
    yaw = yaw_prev + ramp * turn
    pose_prev = rotate_y(prev_t - prev_t[:, :1], -yaw_prev)
    pose_new = rotate_y(new_t - new_t[:, :1], -yaw_new)
    r = ramp[:, None, None]
    pose, pelvis = torch.lerp(pose_prev, pose_new, r), torch.lerp(prev_t[:, :1], new_t[:, :1], r)
    return (rotate_y(pose, yaw) + pelvis).numpy()


def sample_long(
    model: MotionModel,
    text: str,
    n_frames: int,
    control: ControlSignals | None = None,
    *,
    seed: int = 0,
    foot_lock: FootLockConfig | None = None,
    on_step: OnStep | None = None,
    timed_texts: list[TimedText] | None = None,
    overlap: int = OVERLAP_FRAMES,
    hold: int = HOLD_FRAMES,
    prefix: np.ndarray | None = None,
    **knobs: Unpack[SampleOptions],
) -> Motion:
    """One motion of any length (2 … MAX_MOTION_FRAMES pose frames), in windows (module docstring).

    Arguments as `sample`'s for one motion (`knobs`: steps, guidance_scale, optimization,
    use_controlnet, segment_fade, passed to every window); control: the whole motion's `ControlSignals` (n_frames,
    world) or None; timed_texts: the description's segments over the whole motion. A motion that
    fits one window is exactly `sample`'s. `on_step(step, total)` counts the steps of all windows.
    prefix: (P, 22, 3) world joints of a motion this one continues (P ≥ overlap): frames [0, P) of
    the result, exactly but for the last `overlap − hold` (`kept_prefix_frames`), cross-faded into
    the windows sampled from their end. Returns a `Motion` whose `windows` lists
    each window's [start, end).
    """
    given = 0 if prefix is None else int(prefix.shape[0])
    windows = plan_windows(n_frames, model.max_frames, overlap, hold, given=given)
    timed = timed_texts or []
    if control is not None and control.n_frames != n_frames:
        raise ConstraintError(f"control signals have {control.n_frames} frames but the length is {n_frames}")
    if len(windows) == 1 and not given:
        m = sample(model, [text], [n_frames], [control], seed=seed, foot_lock=foot_lock, on_step=on_step,
                   timed_texts=[timed], **knobs)[0]
        m.windows = [(0, n_frames)]
        return m
    opt_cfg = knobs.get("optimization") or model.optimization
    lock_cfg = foot_lock if foot_lock is not None else model.foot_lock
    no_lock = lock_cfg.model_copy(update={"enabled": False})  # once, over the stitched motion
    total_steps = (knobs.get("steps") or model.diffusion.cfg.sample_steps) * len(windows)
    out = np.zeros((n_frames, N_JOINTS, 3))
    if prefix is not None:
        out[:given] = prefix
    timings: dict[str, float] = {}
    losses: list[float] = []
    for k, w in enumerate(windows):
        if not w.held:
            origin, yaw, held = torch.zeros(3), 0.0, None
        else:
            held = torch.as_tensor(out[w.start:w.start + w.held])
            origin = torch.tensor([float(held[0, 0, 0]), 0.0, float(held[0, 0, 2])], dtype=held.dtype)
            yaw = float(facing_yaw(held[0]))
        wc = window_control(control, w, held, origin, yaw, opt_cfg.align_yaw)

        def step_cb(i: int, n: int, k: int = k) -> None:
            if on_step is not None:
                on_step(k * n + i, total_steps)

        m = sample(model, [text], [w.n_frames], [wc], seed=window_seed(seed, k), foot_lock=no_lock,
                   on_step=step_cb, timed_texts=[window_texts(timed, w)], **knobs)[0]
        for key, v in m.timings.items():
            timings[key] = timings.get(key, 0.0) + v
        losses += m.optimization_loss
        joints = _to_world(torch.as_tensor(m.joints, dtype=torch.float64), origin.double(), yaw).numpy()
        new_from = w.held + w.fade
        if w.fade:
            a = w.start + w.held
            out[a:a + w.fade] = cross_fade(out[a:a + w.fade], joints[w.held:new_from])
        out[w.start + new_from:w.end] = joints[new_from:]
        log.debug("window %d/%d: frames %d..%d", k + 1, len(windows), w.start, w.end)
    t0 = time.perf_counter()
    if lock_cfg.enabled:
        pinned = np.zeros((n_frames, N_JOINTS), dtype=bool)
        if control is not None:
            pinned |= control.pose_mask.cpu().numpy()
        kept = kept_prefix_frames(given, overlap, hold) if given else 0
        pinned[:kept] = True  # a foot planted in the kept frames stays where it was
        out = lock_feet(out, lock_cfg, pinned)
    if prefix is not None:
        kept = kept_prefix_frames(given, overlap, hold)
        out[:kept] = prefix[:kept]  # exactly (the lock's ramps may have touched the last kept frames)
    timings["foot_lock_s"] = time.perf_counter() - t0
    feats = joints_to_features(torch.from_numpy(out), canonical=False).numpy()
    return Motion(features=feats.astype(np.float32), joints=out.astype(np.float32), fps=FPS, text=text,
                  seed=int(seed), timings=timings, optimization_loss=losses,
                  windows=[(w.start, w.end) for w in windows], seams=seam_frames(windows))
