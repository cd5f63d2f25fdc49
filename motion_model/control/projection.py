"""Exact constraint projection: the smallest change of a motion's features that puts its pelvis on
the trajectory constraints and its joints on the aligned keyframe poses.

Stage 1's gradient steps (guidance.py) pull a motion towards its constraints but converge slowly
where the map from features to joints is ill-conditioned: the pelvis is an integral of per-frame
velocities, so a waypoint far along the path depends on every earlier row (measured: 200 clipped
steps still left 0.37 m on dense paths). Both constraints are, however, *linear* in a few
feature channels once the root yaw is held fixed, and those linear maps are rotations, so the
closed-form minimum-norm correction is cheap:

* **Trajectory.** The pelvis at frame n is p_n = Σ_{m≤n} Q_m u_m, where u_m is the velocity channel
  of step m (frame m−1 → m: the root linear velocity of row m−1, or the last row's local root
  velocity for the final frame) and Q_m the root-yaw rotation of that step. Minimising Σ‖Δu_m‖²
  subject to the constrained coordinates of p hitting their targets spreads each residual evenly
  over the steps between consecutive constrained frames (world-frame step change ΔW_m constant
  per segment; frame 0 stays at the origin; nothing changes after the last constrained frame).
  Δu_m = Q_mᵀ ΔW_m is read off one backward pass: ∂/∂u_m Σ_n ⟨g_n, p_n⟩ = Q_mᵀ Σ_{n≥m} g_n, so
  g_n = ΔW_n − ΔW_{n+1} yields exactly the wanted change.
* **Keyframes.** Joint j ≥ 1 of frame n < L is R_nᵀ·ric_{n,j} + root_n (root-relative in the body
  frame), and of the last frame L additionally the last row's local joint velocity. The world
  offset δ = Align(x)[n,j] − R(x)[n,j] (guidance.align_keyframes) becomes the body-frame offset
  R_n δ, again read off a backward pass. A keyframe is a single frame, so its offset is blended
  into the neighbouring frames with a Hann window of half-width `blend_frames` (weights solved so
  that every keyframe is still met exactly when windows overlap), which keeps the motion
  continuous instead of popping into the pose.

* **Heading.** Where the trajectory says which way the body faces (`ControlBatch.heading`), the
  root yaw is turned first, by the smallest change of the yaw-velocity channel: the body's facing
  (hips and shoulders), averaged over ±`HEADING_SMOOTH_FRAMES` frames so that the stride's own hip
  sway is kept, is put on the target at anchor frames every `HEADING_ANCHOR_EVERY` frames, the
  change spread evenly over the steps between anchors (as for the trajectory). The body frame
  turns with the yaw, so the ric joints and local velocities follow; the pelvis path then moves,
  which the trajectory projection after it corrects (with the new yaw held fixed). Without this a
  body asked to walk a circle turned about half as far as its path and slid sideways.

The projection acts on raw (denormalised) features of one motion and leaves the root yaw (unless a
heading is given), the root height (unless the trajectory constrains y) and every unconstrained
coordinate alone.
"""

from __future__ import annotations

import numpy as np
import torch

from ikmo.motion_model.control.align import JointsFn, align_keyframes, facing_yaw
from ikmo.motion_model.control.control_batch import ControlBatch
from ikmo.motion_model.representation.features import feature_layout

_LAY = feature_layout()
_J = _LAY.n_joints
_ROOT_LV = slice(_LAY.local_vel.start, _LAY.local_vel.start + 3)  # the root's local velocity (x, y, z)
_JOINT_LV = slice(_LAY.local_vel.start + 3, _LAY.local_vel.stop)  # joints 1..J-1
# Heading anchors every 0.5 s at 20 fps; the facing is averaged over ±0.5 s (about one stride).
HEADING_ANCHOR_EVERY = 10
HEADING_SMOOTH_FRAMES = 10


def segment_steps(resid: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Minimum-norm per-step changes (T,) that move frame n by resid[n] where mask[n].

    resid, mask: (T,) of one world coordinate. Step m (1 ≤ m < T) moves frame m−1 → m; frame 0 is
    fixed (a constraint there cannot be met by velocities and is ignored). Entry 0 is always 0.
    """
    T = resid.shape[0]
    out = np.zeros(T)
    anchors = np.flatnonzero(mask[1:]) + 1
    if anchors.size == 0:
        return out
    anchors = np.concatenate([[0], anchors])
    vals = np.concatenate([[0.0], resid[anchors[1:]]])
    m = np.arange(1, anchors[-1] + 1)
    k = np.searchsorted(anchors, m)  # the first anchor at or after step m's frame
    out[m] = (vals[k] - vals[k - 1]) / (anchors[k] - anchors[k - 1])
    return out


def smoothed_facing(joints: np.ndarray, half_width: int = HEADING_SMOOTH_FRAMES) -> np.ndarray:
    """Facing yaw (T,) radians, unwrapped, of joints (T, 22, 3), averaged over ±half_width frames
    (as a direction, so the average of +179° and −179° is 180°)."""
    yaw = facing_yaw(torch.as_tensor(joints, dtype=torch.float64)).numpy()
    k = 2 * half_width + 1
    s = np.convolve(np.pad(np.sin(yaw), half_width, mode="edge"), np.ones(k), mode="valid")
    c = np.convolve(np.pad(np.cos(yaw), half_width, mode="edge"), np.ones(k), mode="valid")
    return np.unwrap(np.arctan2(s, c))


def project_heading(raw: torch.Tensor, control: ControlBatch, joints_fn: JointsFn) -> torch.Tensor:
    """Raw features (1, L, F) of one motion → features whose smoothed facing meets `control`'s heading
    at anchor frames (see the module docstring); the pelvis path is left to `project_trajectory`."""
    L = raw.shape[1]
    hm = control.heading_mask[0, :L].cpu().numpy()  # frame L's yaw is row L-1's: frames 0..L-1 suffice
    if not hm.any():
        return raw
    with torch.no_grad():
        joints = joints_fn(raw.detach())[0, :L].cpu().double().numpy()
    current = smoothed_facing(joints)
    target = control.heading[0, :L].cpu().double().numpy()
    idx = np.flatnonzero(hm)
    anchors = np.unique(np.concatenate([idx[::HEADING_ANCHOR_EVERY], idx[-1:]]))
    anchors = anchors[anchors > 0]  # frame 0's yaw is the identity by convention
    if anchors.size == 0:
        return raw
    # The target is one continuous curve: shift it by whole turns to start where the body is.
    turns = np.round((current[anchors[0]] - target[anchors[0]]) / (2 * np.pi))
    resid = np.zeros(L)
    resid[anchors] = target[anchors] + 2 * np.pi * turns - current[anchors]
    mask = np.zeros(L, dtype=bool)
    mask[anchors] = True
    # The stored yaw channel is the half angle of each step's rotation, and the body frame's yaw is
    # the facing's negative (HumanML3D's root frame turns the world into the body's view).
    dhalf = -0.5 * segment_steps(resid, mask)  # (L,): entry m changes the step frame m-1 → m
    out = raw.detach().clone()
    out[0, :-1, 0] += torch.as_tensor(dhalf[1:], dtype=out.dtype, device=out.device)
    return out


def project_trajectory(raw: torch.Tensor, control: ControlBatch, joints_fn: JointsFn) -> torch.Tensor:
    """Raw features (1, L, F) of one motion → features whose pelvis meets `control`'s trajectory.

    control: that motion's constraints over its T = L + 1 frames. xz are met by changing the
    velocity channels (see the module docstring); a constrained y is met by raising the root height
    and every joint's height together at that frame, interpolated between constrained frames.
    """
    tm = control.traj_mask[0]
    if not bool(tm.any()):
        return raw
    x = raw.detach().clone().requires_grad_(True)
    joints = joints_fn(x)
    T = joints.shape[1]
    resid = (control.traj[0, :T] - joints[0, :, 0]).detach().cpu().double().numpy()
    mask = tm[:T].cpu().numpy()
    steps = np.zeros((T + 1, 3))
    for c in (0, 2):
        steps[:T, c] = segment_steps(resid[:, c], mask[:, c])
    g = torch.as_tensor(steps[:T] - steps[1:], dtype=x.dtype, device=x.device)
    (grad,) = torch.autograd.grad((joints[0, :, 0] * g).sum(), x)
    out = raw.detach().clone()
    out[0, :, _LAY.root_lin_vel] += grad[0, :, _LAY.root_lin_vel]
    out[0, -1, _ROOT_LV] += grad[0, -1, _ROOT_LV]
    if bool(mask[:, 1].any()):
        dy = torch.as_tensor(_interpolate(resid[:, 1], mask[:, 1]), dtype=out.dtype, device=out.device)
        L = out.shape[1]
        out[0, :, _LAY.root_y] += dy[:L, None]
        out[0, :, _LAY.ric.start + 1:_LAY.ric.stop:3] += dy[:L, None]
        out[0, -1, _LAY.local_vel.start + 1:_LAY.local_vel.stop:3] += dy[L] - dy[L - 1]
    return out


def _interpolate(resid: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(T,) values at masked frames, linear in between, held constant before the first / after the last."""
    idx = np.flatnonzero(mask)
    return np.interp(np.arange(resid.shape[0]), idx, resid[idx])


def hann(distance: np.ndarray, half_width: int) -> np.ndarray:
    """Blend weight of a frame `distance` frames from a keyframe: 1 at 0, 0 from `half_width` on."""
    if half_width <= 0:
        return (distance == 0).astype(float)
    d = np.abs(distance) / half_width
    return np.where(d < 1, 0.5 * (1 + np.cos(np.pi * np.minimum(d, 1))), 0.0)


def blend_offsets(offsets: np.ndarray, mask: np.ndarray, half_width: int) -> np.ndarray:
    """Spread per-keyframe offsets over time. offsets: (T, J, 3) at masked (T, J) entries → (T, J, 3).

    Per joint, the blended offset is Σ_k w(t − n_k)·d_k with the d_k solved so that it equals the
    given offset at every keyframe n_k (windows may overlap).
    """
    T, J = mask.shape
    out = np.zeros_like(offsets)
    t = np.arange(T)
    for j in range(J):
        frames = np.flatnonzero(mask[:, j])
        if frames.size == 0:
            continue
        W = hann(frames[:, None] - frames[None, :], half_width)
        d = np.linalg.solve(W + 1e-9 * np.eye(frames.size), offsets[frames, j])
        out[:, j] = hann(t[:, None] - frames[None, :], half_width) @ d
    return out


def project_keyframes(raw: torch.Tensor, control: ControlBatch, joints_fn: JointsFn, *, blend_frames: int = 8,
                      align_yaw: bool = True) -> torch.Tensor:
    """Raw features (1, L, F) of one motion → features whose masked joints (j ≥ 1) meet the aligned
    keyframe poses exactly, the change blended over ±`blend_frames` frames."""
    pm = control.pose_mask[0].clone()
    pm[:, 0] = False  # the pelvis belongs to the trajectory (and Align puts the pose on it)
    if not bool(pm.any()):
        return raw
    x = raw.detach().clone().requires_grad_(True)
    joints = joints_fn(x)
    T, L = joints.shape[1], raw.shape[1]
    delta = (align_keyframes(joints.detach(), control, align_yaw) - joints.detach()) * pm[None, :T, :, None]
    # Body-frame offsets from one backward pass of ⟨δ, R(x)⟩. The last frame is the last row's pose
    # plus that row's local velocities, turned by the same root yaw, so the local-velocity gradient
    # is the last frame's offset alone, and the last ric row's gradient holds both its own frame's
    # offset and the last frame's: subtracting the one gives the other.
    (grad,) = torch.autograd.grad((joints * delta).sum(), x)
    local = np.zeros((T, _J - 1, 3))
    local[:L] = grad[0, :, _LAY.ric].reshape(L, _J - 1, 3).cpu().double().numpy()
    local[L] = grad[0, L - 1, _JOINT_LV].reshape(_J - 1, 3).cpu().double().numpy()
    local[L - 1] -= local[L]
    blended = blend_offsets(local, pm[:T, 1:].cpu().numpy(), blend_frames)
    out = raw.detach().clone()
    b = torch.as_tensor(blended, dtype=out.dtype, device=out.device)
    out[0, :, _LAY.ric] += b[:L].reshape(L, -1)
    out[0, -1, _JOINT_LV] += (b[L] - b[L - 1]).reshape(-1)
    return out


def project(raw: torch.Tensor, control: ControlBatch, joints_fn: JointsFn, *, blend_frames: int = 8,
            align_yaw: bool = True) -> torch.Tensor:
    """Heading, trajectory (with the new yaw), then keyframes (whose Align uses the trajectory point),
    for one motion (1, L, F)."""
    out = project_heading(raw, control, joints_fn)
    out = project_trajectory(out, control, joints_fn)
    return project_keyframes(out, control, joints_fn, blend_frames=blend_frames, align_yaw=align_yaw)
