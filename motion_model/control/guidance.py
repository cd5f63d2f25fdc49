"""Stage 1 of IKMo, Motion Optimization: gradient steps that pull a generated motion onto its
trajectory and keyframe-pose constraints; and the measured constraint errors reported after it.

Losses (per motion; n runs over pose frames, R(x) = global joints of the motion):

    L_traj = Σ_n Σ_c m_traj[n,c]·(c_traj[n,c] − R(x)[n,root,c])² / Σ_n σ_traj[n]
    L_pose = Σ_n Σ_j w[n,j]·‖Align(R(x)[n], c_pose[n], c_traj[n])[j] − R(x)[n,j]‖² / Σ_n σ_pose[n]

m_traj is the per-coordinate trajectory mask (xz, or xyz with `control_height`), σ_traj[n] = 1 where
frame n has any trajectory constraint, w = keyframe confidence × joint mask, σ_pose[n] = 1 where
frame n has a keyframe.

Align (our definition). A keyframe pose is root-relative in the canonical facing (+Z forward).
Align(R(x)[n], c_pose[n], c_traj[n]) = rot_y(ψ_n) · c_pose[n] + r_n, where
  * r_n is the generated pelvis R(x)[n, 0], with the trajectory constraint substituted on the
    coordinates that c_traj constrains at frame n (so a keyframe that coincides with a waypoint is
    placed on the waypoint);
  * ψ_n is the generated body's facing yaw at frame n (from the hips and shoulders, HumanML3D's
    across-vector rule) when `align_yaw` is on (the default): a photo fixes the body's shape, not
    which way the character faces in the scene, which the trajectory and text decide. With
    `align_yaw` off, ψ_n = 0: the pose must be struck facing +Z of the world.
The yaw ψ_n is treated as a constant in the gradient (detached): the loss shapes the body instead
of spinning it. The generated part of r_n is *not* detached, so on unconstrained coordinates the
pelvis cancels out of Align − R(x) and L_pose acts on the root-relative pose only; where c_traj
pins the pelvis, L_pose pulls the pelvis there too, in agreement with L_traj. (Detaching the
whole of r_n lets the pose loss drag the pelvis sideways and wreck the trajectory: measured.)

Where the gradient acts (our choice, documented): on the denoiser's predicted clean motion x0
(normalised features) at the selected DDIM steps, not on x_t through the network. The DDIM update
then re-noises from the corrected x0, so the correction enters the next x_t scaled by sqrt(ᾱ_s)
(OmniControl's spatial guidance perturbs the posterior mean the same way); this avoids a backward
pass through the transformer, which keeps controlled sampling within the CPU speed budget.

With `w_foot` > 0 the gradient steps also pay L_foot (`foot_contact_loss`): planted toes' ground
speed above a tolerance, so that the stride, not only the pelvis, follows a corrected path.

After the gradient steps, `MotionOptimizer` projects x0 exactly onto the constraints
(projection.py, `OptimizationConfig.projection`): the gradient steps are the paper's stage 1, the
projection makes it converge in one closed-form step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import torch

from ikmo.motion_model.constraints import ControlSignals
from ikmo.motion_model.control.align import JointsFn, align_keyframes, facing_yaw, rotate_y
from ikmo.motion_model.control.control_batch import ControlBatch
from ikmo.motion_model.control.projection import project, smoothed_facing
from ikmo.motion_model.model_config import OptimizationConfig
from ikmo.motion_model.motion_metrics import SKATE_HEIGHT_M
from ikmo.motion_model.representation.skeleton import FPS, HUMANML3D_22

log = logging.getLogger(__name__)

# Rounds of L-BFGS between which Align's frozen facing is taken again from the body (`_lbfgs`).
LBFGS_ROUNDS = 4
# Facing within this many degrees of the heading target costs nothing (`heading_loss`).
HEADING_TOLERANCE_DEG = 10.0
# `foot_contact_loss`: a toe under the skating measure's contact height in both frames of a transition
# is planted; the part of its ground speed above this tolerance (m/s) costs. Why a tolerance: a real toe
# under 5 cm still rolls and pivots at push-off (real walks move such a toe faster than 0.5 m/s in a
# quarter of their clips, eval.metrics), which a loss on the whole speed would forbid.
FOOT_SPEED_TOLERANCE_M_S = 0.25

def constraint_losses(joints: torch.Tensor, control: ControlBatch, align_yaw: bool = True,
                      yaw: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_traj, L_pose), each (B,) in m². joints: (B, T, 22, 3); frames past T are ignored. yaw: (B, T)
    frozen facing for Align (default: the generated body's, detached)."""
    T = joints.shape[1]
    tm = control.traj_mask[:, :T].float()
    sig_t = tm.amax(-1).sum(-1).clamp(min=1)
    l_traj = (tm * (control.traj[:, :T] - joints[:, :, 0]) ** 2).sum((-1, -2)) / sig_t
    w = control.pose_weight[:, :T] * control.pose_mask[:, :T]
    sig_p = control.pose_mask[:, :T].any(-1).float().sum(-1).clamp(min=1)
    target = align_keyframes(joints, control, align_yaw, yaw)
    l_pose = (w * ((target - joints) ** 2).sum(-1)).sum((-1, -2)) / sig_p
    return l_traj, l_pose


def heading_loss(joints: torch.Tensor, control: ControlBatch) -> torch.Tensor:
    """L_head (B,): mean over the frames with a heading target h of max(0, cos τ − cos(ψ_n − h_n)),
    ψ the body's facing (hips and shoulders) and τ = `HEADING_TOLERANCE_DEG`. joints: (B, T, 22, 3).

    Why per frame and with a tolerance: a walk's facing sways with the stride by a few degrees, which
    the tolerance leaves alone; a loss on the facing averaged over a window (as the projection uses)
    was met by making the facing swing either side of the target (measured: loss 0.001, body still
    52° off). Without the term, gradient steps alone meet the path with the body turned off it
    (measured on the agent suite: a right turn that spun the body by 437°, a 30 s walk 74° off)."""
    T = joints.shape[1]
    hm = control.heading_mask[:, :T].to(joints.dtype)
    if not bool(hm.any()):
        return joints.new_zeros(joints.shape[0])
    cos_diff = torch.cos(facing_yaw(joints) - control.heading[:, :T].to(joints.dtype))  # (B, T)
    excess = torch.relu(math.cos(math.radians(HEADING_TOLERANCE_DEG)) - cos_diff)
    return (excess * hm).sum(-1) / hm.sum(-1).clamp(min=1)


def foot_contact_loss(joints: torch.Tensor, n_frames: torch.Tensor, fps: float = FPS) -> torch.Tensor:
    """L_foot (B,), (m/s)²: mean over the transitions t → t+1 of each motion's first n_frames[b] frames
    of Σ_toes c_t · relu(v_t − `FOOT_SPEED_TOLERANCE_M_S`)², v the toe's ground (xz) speed and c_t = 1
    where the toe is under `SKATE_HEIGHT_M` (the skating measure's contact) in both frames (detached:
    the loss slows a planted foot, it does not lift one). joints: (B, T, 22, 3); n_frames: (B,) pose
    frames of each motion.

    Why in stage 1: the projection spreads a path correction evenly over the frames, which slides the
    whole body, planted feet included; this term lets the gradient steps (and the denoiser after
    them) put the stride under the moved pelvis instead."""
    toes = joints[:, :, [HUMANML3D_22.feet_left[1], HUMANML3D_22.feet_right[1]]]  # (B, T, 2, 3)
    step = toes[:, 1:] - toes[:, :-1]
    speed = (step[..., 0] ** 2 + step[..., 2] ** 2 + 1e-12).sqrt() * fps  # (B, T-1, 2)
    h = toes[..., 1].detach()
    planted = (h[:, 1:] < SKATE_HEIGHT_M) & (h[:, :-1] < SKATE_HEIGHT_M)
    T = joints.shape[1]
    inside = torch.arange(T - 1, device=joints.device)[None] < (n_frames.to(joints.device)[:, None] - 1)
    cost = (torch.relu(speed - FOOT_SPEED_TOLERANCE_M_S) ** 2 * planted).sum(-1) * inside
    return cost.sum(-1) / inside.sum(-1).clamp(min=1)


class MotionOptimizer:
    """The stage-1 x0 hook for `GaussianDiffusion.ddim_sample`.

    denormalize: normalised → raw features; joints_fn: raw features → global joints; normalize: raw →
    normalised (needed for the projection); lengths: pose frames T_b of each motion (default: all
    of the batch's frames).
    """

    def __init__(self, control: ControlBatch, cfg: OptimizationConfig,
                 denormalize: Callable[[torch.Tensor], torch.Tensor], joints_fn: JointsFn,
                 normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 lengths: list[int] | None = None) -> None:
        self.control, self.cfg = control, cfg
        self.denormalize, self.joints_fn, self.normalize = denormalize, joints_fn, normalize
        self.lengths = lengths
        # Pose frames per motion (B,) as a tensor, for R(·)'s n_rows and the foot term; None: all frames.
        self._frames = torch.as_tensor(lengths) if lengths is not None else None
        self.history: list[float] = []  # mean total loss before each acting step, for logging/tests

    def acts_at(self, i: int, n: int) -> bool:
        if not self.cfg.enabled or not self.control.any():
            return False
        first = n - max(1, int(round(self.cfg.act_fraction * n)))
        return i >= first

    def joints(self, x0: torch.Tensor) -> torch.Tensor:
        """Global joints (B, L + 1, 22, 3) of normalised features x0 (B, L, F)."""
        n_rows = None if self._frames is None else self._frames.to(x0.device) - 1
        return self.joints_fn(self.denormalize(x0), n_rows=n_rows)

    def loss(self, x0: torch.Tensor, yaw: torch.Tensor | None = None) -> torch.Tensor:
        """Per-motion weighted loss (B,) of normalised features x0 (B, L, F); yaw: (B, L + 1) frozen
        facing for Align (default: the generated body's, detached)."""
        joints = self.joints(x0)
        l_traj, l_pose = constraint_losses(joints, self.control, self.cfg.align_yaw, yaw)
        total = self.cfg.w_traj * l_traj + self.cfg.w_pose * l_pose
        if self.cfg.w_heading > 0:
            total = total + self.cfg.w_heading * heading_loss(joints, self.control)
        if self.cfg.w_foot > 0:
            n = self._frames if self._frames is not None else torch.full((joints.shape[0],), joints.shape[1])
            total = total + self.cfg.w_foot * foot_contact_loss(joints, n)
        return total

    def optimize(self, x0: torch.Tensor, iterations: int) -> torch.Tensor:
        """`iterations` gradient steps on x0 (B, L, F); each motion's step is independent.

        A step that raises a motion's loss is undone and that motion's step size halved (the map
        from features to joints is non-convex through the integrated root yaw), so the loss never
        ends above where it started.
        """
        if self.cfg.optimizer == "lbfgs":
            return self._lbfgs(x0, iterations)
        B = x0.shape[0]
        lr = torch.full((B, 1, 1), self.cfg.step_size, device=x0.device, dtype=x0.dtype)
        x = x0.detach().clone().requires_grad_(True)
        loss = self.loss(x)
        self.history.append(float(loss.detach().mean()))
        grad = self._clipped_grad(loss, x) if iterations else None
        for _ in range(iterations):
            assert grad is not None
            cand = (x.detach() - lr * grad).requires_grad_(True)
            cand_loss = self.loss(cand)
            worse = cand_loss.detach() > loss.detach()
            lr = torch.where(worse[:, None, None], lr * 0.5, lr)
            if bool(worse.all()):
                continue  # same x, same gradient, smaller steps
            if bool(worse.any()):
                x = torch.where(worse[:, None, None], x.detach(), cand.detach()).requires_grad_(True)
                loss = self.loss(x)
            else:
                x, loss = cand, cand_loss
            self.history.append(float(loss.detach().mean()))
            grad = self._clipped_grad(loss, x)
        return x.detach()

    def _lbfgs(self, x0: torch.Tensor, iterations: int) -> torch.Tensor:
        """Up to `iterations` L-BFGS iterations (strong-Wolfe line search) on x0 (B, L, F).

        The motions' losses are independent, so their sum is minimised jointly. Plain gradient steps
        crawl on a dense path because the pelvis is an integral of the root velocities (a long,
        ill-conditioned valley); L-BFGS's curvature estimate crosses it in a few iterations. A line
        search needs the loss to be one function of x, but Align's facing is detached (the loss
        shapes the body, not its heading): so the facing is frozen for a round of
        iterations, then taken again from the body, `LBFGS_ROUNDS` times.
        """
        x = x0.detach().clone().requires_grad_(True)
        with torch.no_grad():
            self.history.append(float(self.loss(x).mean()))
        per_round = -(-iterations // LBFGS_ROUNDS)
        for _ in range(LBFGS_ROUNDS if iterations else 0):
            with torch.no_grad():
                yaw = facing_yaw(self.joints(x)) if self.control.pose_mask.any() else None
            opt = torch.optim.LBFGS([x], lr=1.0, max_iter=per_round, history_size=10,
                                    line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

            def closure(yaw: torch.Tensor | None = yaw, opt: torch.optim.LBFGS = opt) -> torch.Tensor:
                opt.zero_grad()
                total = self.loss(x, yaw).sum()
                total.backward()
                return total

            opt.step(closure)
        with torch.no_grad():
            self.history.append(float(self.loss(x).mean()))
        return x.detach()

    def _clipped_grad(self, loss: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        (grad,) = torch.autograd.grad(loss.sum(), x)
        # Clip each motion's gradient norm so one step can never throw the motion far off the
        # data manifold, whatever the constraint's distance.
        norm = grad.flatten(1).norm(dim=1).clamp(min=1e-8)[:, None, None]
        return grad * (self.cfg.max_grad_norm / norm).clamp(max=1.0)

    def projects_at(self, i: int, n: int) -> bool:
        if not (self.cfg.projection and self.normalize is not None and self.acts_at(i, n)):
            return False
        first = n - max(1, int(round(self.cfg.project_fraction * self.cfg.act_fraction * n)))
        return i >= first

    def project(self, x0: torch.Tensor) -> torch.Tensor:
        """Exact projection of each motion of x0 (B, L, F), normalised, onto its constraints."""

        assert self.normalize is not None
        out = x0.detach().clone()
        lengths = self.lengths or [x0.shape[1] + 1] * x0.shape[0]
        for b, T in enumerate(lengths):
            raw = self.denormalize(out[b:b + 1, :T - 1])
            fixed = project(raw, self.control.select(b, T), self.joints_fn, blend_frames=self.cfg.blend_frames,
                            align_yaw=self.cfg.align_yaw)
            out[b:b + 1, :T - 1] = self.normalize(fixed)
        return out

    def __call__(self, x0: torch.Tensor, i: int, n: int) -> torch.Tensor:
        if not self.acts_at(i, n):
            return x0
        iters = self.cfg.iterations + (self.cfg.final_iterations if i == n - 1 else 0)
        x0 = self.optimize(x0, iters) if iters else x0
        return self.project(x0) if self.projects_at(i, n) else x0


def measured_errors(joints: np.ndarray, control: ControlSignals, align_yaw: bool = True) -> dict[str, float]:
    """Constraint errors of one generated motion, metres (NaN where that constraint is absent).

    joints: (T, 22, 3) global joints. traj_err_mean/max: Euclidean distance of the pelvis to the
    trajectory over the constrained coordinates of each constrained frame. keyframe_mpjpe: mean
    per-joint error over the masked joints of each keyframe after root alignment (both poses'
    pelvis at the origin; the keyframe rotated to the generated facing when `align_yaw`).
    keyframe_mpjpe_max: the worst keyframe's MPJPE. heading_err_mean_deg: mean angle (degrees)
    between the body's smoothed facing (`projection.smoothed_facing`) and the heading where the
    trajectory gives one.
    """
    j = torch.as_tensor(joints, dtype=torch.float32)
    T = j.shape[0]
    out = {"traj_err_mean": float("nan"), "traj_err_max": float("nan"),
           "keyframe_mpjpe": float("nan"), "keyframe_mpjpe_max": float("nan"), "heading_err_mean_deg": float("nan")}
    tm = control.traj_mask[:T]
    frames = tm.any(-1)
    if frames.any():
        d = ((control.traj[:T] - j[:, 0]) ** 2 * tm).sum(-1).sqrt()[frames]
        out["traj_err_mean"], out["traj_err_max"] = float(d.mean()), float(d.max())
    kf = control.pose_mask[:T].any(-1)
    if kf.any():
        rel = j - j[:, :1]
        pose = rotate_y(control.pose[:T], facing_yaw(j)) if align_yaw else control.pose[:T]
        err = (pose - rel).norm(dim=-1)  # (T, 22)
        m = control.pose_mask[:T]
        per_kf = (err * m).sum(-1)[kf] / m.sum(-1)[kf]
        out["keyframe_mpjpe"] = float((err[m]).mean())
        out["keyframe_mpjpe_max"] = float(per_kf.max())
    hm = control.heading_mask[:T].cpu().numpy()
    if hm.any():
        diff = smoothed_facing(np.asarray(joints, dtype=np.float64)) - control.heading[:T].cpu().double().numpy()
        wrapped = (diff + np.pi) % (2 * np.pi) - np.pi
        out["heading_err_mean_deg"] = float(np.degrees(np.abs(wrapped[hm])).mean())
    return out
