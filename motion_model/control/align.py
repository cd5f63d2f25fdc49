"""Align (the paper's keyframe placement) and the pieces of R(·) that stage 1, the projection and
training share: a keyframe pose placed on the generated motion's root and facing.

Align(R(x)[n], c_pose[n], c_traj[n]) = rot_y(ψ_n) · c_pose[n] + r_n (see `guidance` for the full
definition): r_n is the generated pelvis with the trajectory constraint substituted where c_traj
constrains it, ψ_n the generated body's facing yaw (detached) when `align_yaw` is on.
"""

from __future__ import annotations

from typing import Protocol

import torch

from ikmo.motion_model.control.control_batch import ControlBatch
from ikmo.motion_model.representation.skeleton import HUMANML3D_22


class JointsFn(Protocol):
    """R(·): denormalised features (B, L, F) → global joints (B, L + 1, 22, 3), differentiable.

    n_rows: (B,) valid feature rows of each motion of a padded batch (default: all L); motion b's
    pose frames are then 0..n_rows[b], its last one recovered from its own last row, not from the
    padding after it.
    """

    def __call__(self, features: torch.Tensor, n_rows: torch.Tensor | None = None) -> torch.Tensor: ...


def facing_yaw(joints: torch.Tensor) -> torch.Tensor:
    """Facing yaw ψ (radians, 0 = +Z, +π/2 = +X) of each pose. joints: (..., 22, 3) → (...,)."""
    r_hip, l_hip, r_sho, l_sho = HUMANML3D_22.face_joints
    across = (joints[..., r_hip, :] - joints[..., l_hip, :]) + (joints[..., r_sho, :] - joints[..., l_sho, :])
    # forward = up × across, with up = +y: (across_z, 0, -across_x)
    return torch.atan2(across[..., 2], -across[..., 0])


def rotate_y(points: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """Rotate (..., J, 3) points about +y by yaw (...,) radians, taking +Z to (sin ψ, 0, cos ψ)."""
    c, s = torch.cos(yaw)[..., None], torch.sin(yaw)[..., None]
    x, y, z = points.unbind(-1)
    return torch.stack([c * x + s * z, y, -s * x + c * z], dim=-1)


def align_keyframes(joints: torch.Tensor, control: ControlBatch, align_yaw: bool = True,
                    yaw: torch.Tensor | None = None) -> torch.Tensor:
    """Align: the keyframe poses placed on the generated motion, (B, T, 22, 3).

    joints: (B, T, 22, 3) generated global joints (T ≤ control.n_frames). yaw: (B, T) facing to turn
    the keyframes to instead of the generated body's (a frozen ψ makes the loss one function of the
    joints, which a line search needs).
    """
    T = joints.shape[1]
    root = torch.where(control.traj_mask[:, :T], control.traj[:, :T], joints[:, :, 0])
    pose = control.pose[:, :T]
    if align_yaw:
        pose = rotate_y(pose, facing_yaw(joints.detach()) if yaw is None else yaw[:, :T])
    return pose + root[:, :, None]
