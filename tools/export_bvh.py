"""Write a 22-joint motion as BVH (the syntax Blender's importer and MotionBuilder read).

File layout:
- joint names are SMPL's (``pelvis``, ``left_hip``, ...), in the HumanML3D order; the hierarchy
  follows `HUMANML3D_22.parents`; every leaf (feet, head, wrists) closes with an ``End Site``;
- ROOT ``pelvis``: ``OFFSET 0 0 0`` and ``CHANNELS 6 Xposition Yposition Zposition Zrotation
  Yrotation Xrotation``: the position channels are the pelvis' world position;
- every other joint: ``CHANNELS 3 Zrotation Yrotation Xrotation``: intrinsic Euler angles in
  degrees, ``R = Rz @ Ry @ Rx`` (column vectors), relative to the parent; each channel is
  unwrapped over time so no angle jumps by 360°;
- units metres by default (Blender imports them 1:1), or centimetres (``units="cm"``); y up,
  the character faces +Z at frame 0 (Blender's importer converts Y-up to Z-up itself);
- rest pose (all rotations zero): a T-pose carrying the motion's own bone lengths, see
  `tools.rig_rotations` for how per-joint rotations are solved from positions and why the
  re-imported positions are exact (≤ 1e-5 m here) for HumanML3D data.
"""

from __future__ import annotations

import io
import logging
import os
from typing import Literal

import numpy as np

from ikmo.motion_model.errors import MotionDataError
from ikmo.motion_model.skeleton import FPS, HUMANML3D_22, Skeleton

from .export_common import check_joints, output_file
from .rig_rotations import RigPose, motion_rest_offsets, solve_rig_rotations

log = logging.getLogger(__name__)

ROTATION_ORDER = "ZYX"
ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation")
JOINT_CHANNELS = ("Zrotation", "Yrotation", "Xrotation")
_UNIT_SCALE = {"m": 1.0, "cm": 100.0}
# End Site length past each leaf, metres, along the leaf bone's rest direction: toe tip, top of
# the head, hand. Cosmetic (they give the leaf bones a visible length in Blender).
_END_SITE_LENGTH = 0.08


def matrix_to_euler_zyx(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations → (..., 3) intrinsic Z, Y, X angles in degrees with R = Rz @ Ry @ Rx."""
    # R = Rz(a) Ry(b) Rx(c): R[2,0] = -sin b, R[1,0]/R[0,0] = tan a, R[2,1]/R[2,2] = tan c.
    sb = np.clip(-R[..., 2, 0], -1.0, 1.0)
    b = np.arcsin(sb)
    cb = np.sqrt(R[..., 0, 0] ** 2 + R[..., 1, 0] ** 2)
    gimbal = cb < 1e-6
    a = np.where(gimbal, np.arctan2(-R[..., 0, 1], R[..., 1, 1]), np.arctan2(R[..., 1, 0], R[..., 0, 0]))
    c = np.where(gimbal, 0.0, np.arctan2(R[..., 2, 1], R[..., 2, 2]))
    return np.degrees(np.stack([a, b, c], axis=-1))


def bvh_rig(joints: np.ndarray, skeleton: Skeleton = HUMANML3D_22) -> RigPose:
    """Solve the BVH rig of a motion: rest offsets from its own geometry, per-joint rotations.

    Args:
        joints: (T, J, 3) metres (validated: shape, frames, finite).
    Returns:
        RigPose; ``max_error_m`` is how far a re-import can be from `joints`.
    """
    joints = check_joints(joints, skeleton)
    rest = motion_rest_offsets(joints, skeleton)
    return solve_rig_rotations(joints, rest, skeleton.parents, aim_from_solved=True)


def bvh_text(
    joints: np.ndarray,
    fps: float = FPS,
    *,
    skeleton: Skeleton = HUMANML3D_22,
    units: Literal["m", "cm"] = "m",
) -> tuple[str, RigPose]:
    """The BVH file content of a motion.

    Args:
        joints: (T, J, 3) metres, y up.
        fps: frames per second (Frame Time = 1 / fps).
        units: length unit of the file.
    Returns:
        (text, rig): the file content and the solved rig (its ``max_error_m`` in metres).
    """
    if units not in _UNIT_SCALE:
        raise MotionDataError(f"BVH units must be 'm' or 'cm', got {units!r}")
    if not np.isfinite(fps) or fps <= 0:
        raise MotionDataError(f"fps must be a positive number, got {fps}")
    rig = bvh_rig(joints, skeleton)
    scale = _UNIT_SCALE[units]
    out = io.StringIO()
    _write_hierarchy(out, skeleton, rig.rest_offsets * scale, _END_SITE_LENGTH * scale)
    T = rig.local_rotations.shape[0]
    euler = np.unwrap(matrix_to_euler_zyx(rig.local_rotations), period=360.0, axis=0)  # (T, J, 3)
    # MOTION columns follow the joints in HIERARCHY (depth-first) order, not the skeleton's index order.
    order = hierarchy_order(skeleton)
    data = np.concatenate([rig.root_position * scale, euler[:, order].reshape(T, -1)], axis=1)
    out.write(f"MOTION\nFrames: {T}\nFrame Time: {1.0 / fps:.8f}\n")
    np.savetxt(out, data, fmt="%.6f", delimiter=" ")
    return out.getvalue(), rig


def hierarchy_order(skeleton: Skeleton = HUMANML3D_22) -> list[int]:
    """Joint indices in the depth-first order in which the BVH HIERARCHY lists them."""
    order: list[int] = []

    def visit(j: int) -> None:
        order.append(j)
        for c in skeleton.children(j):
            visit(c)

    visit(0)
    return order


def _write_hierarchy(out: io.StringIO, skeleton: Skeleton, offsets: np.ndarray, end_length: float) -> None:
    children = [skeleton.children(j) for j in range(skeleton.n_joints)]

    def fmt(v: np.ndarray) -> str:
        return " ".join(f"{x:.6f}" for x in v)

    def joint(j: int, depth: int) -> None:
        ind = "\t" * depth
        kind = "ROOT" if skeleton.parents[j] < 0 else "JOINT"
        chans = ROOT_CHANNELS if kind == "ROOT" else JOINT_CHANNELS
        out.write(f"{ind}{kind} {skeleton.joint_names[j]}\n{ind}{{\n")
        out.write(f"{ind}\tOFFSET {fmt(offsets[j])}\n")
        out.write(f"{ind}\tCHANNELS {len(chans)} {' '.join(chans)}\n")
        if children[j]:
            for c in children[j]:
                joint(c, depth + 1)
        else:
            # End Site continues the leaf bone's rest direction (a toe tip, the top of the head, a hand).
            d = offsets[j] / max(float(np.linalg.norm(offsets[j])), 1e-9)
            out.write(f"{ind}\tEnd Site\n{ind}\t{{\n{ind}\t\tOFFSET {fmt(d * end_length)}\n{ind}\t}}\n")
        out.write(f"{ind}}}\n")

    out.write("HIERARCHY\n")
    joint(0, 0)


def write_bvh(
    path: str | os.PathLike[str],
    joints: np.ndarray,
    fps: float = FPS,
    *,
    skeleton: Skeleton = HUMANML3D_22,
    units: Literal["m", "cm"] = "m",
) -> RigPose:
    """Write `joints` (T, J, 3) metres as a BVH file, atomically.

    Returns:
        The solved rig; ``max_error_m`` is the largest distance (metres) between the joints a
        BVH reader reconstructs and `joints` (logged as a warning above 1 mm: a generated motion
        whose bone lengths drift cannot be reproduced exactly by a fixed-length rig).
    """
    text, rig = bvh_text(joints, fps, skeleton=skeleton, units=units)
    with output_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    level = logging.WARNING if rig.max_error_m > 1e-3 else logging.INFO
    log.log(level, "wrote %s: %d frames, rig reproduces the joints within %.2f mm", path,
            rig.local_rotations.shape[0], rig.max_error_m * 1e3)
    return rig
