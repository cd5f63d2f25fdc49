"""Write a 22-joint motion as BVH (the syntax Blender's importer and MotionBuilder read).

File layout:
- joint names are SMPL's (``pelvis``, ``left_hip``, ...), in the HumanML3D order; the hierarchy
  follows `HUMANML3D_22.parents`; every leaf (feet, head, wrists) closes with an ``End Site``;
- ROOT ``pelvis``: ``OFFSET 0 0 0`` and ``CHANNELS 6 Xposition Yposition Zposition Zrotation
  Xrotation Yrotation``: the position channels are the pelvis' world position;
- every other joint: ``CHANNELS 3 Zrotation Xrotation Yrotation``: intrinsic Euler angles in
  degrees, ``R = Rz @ Rx @ Ry`` (column vectors), relative to the parent; of the equivalent angle
  triples the one nearest the previous frame's is written, so no channel jumps by 180° or 360°;
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
from dataclasses import replace
from typing import Literal

import numpy as np

from ikmo.motion_model.errors import MotionDataError
from ikmo.motion_model.representation.rotations import matrix_to_euler
from ikmo.motion_model.representation.skeleton import FPS, HUMANML3D_22, Skeleton

from .export_common import check_joints, output_file
from .rig_rotations import RigPose, motion_rest_offsets, solve_rig_rotations

log = logging.getLogger(__name__)

# Z, X, Y (the CMU/Blender-common order): with y up the yaw axis must not be the middle one, where
# Euler angles lock at ±90°; ZXY only locks at ±90° of pitch about X.
ROTATION_ORDER = "ZXY"
ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
JOINT_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")
_UNIT_SCALE = {"m": 1.0, "cm": 100.0}
# End Site length past each leaf, metres, along the leaf bone's rest direction: toe tip, top of
# the head, hand. Cosmetic (they give the leaf bones a visible length in Blender).
_END_SITE_LENGTH = 0.08


def continuous_euler(R: np.ndarray, order: str = ROTATION_ORDER) -> np.ndarray:
    """(T, J, 3, 3) rotations → (T, J, 3) Euler degrees in `order` that change as little as possible
    per frame.

    Every rotation has two Tait-Bryan triples, (a, b, c) and (a + 180, 180 - b, c + 180), plus multiples of
    360 on each angle. Frame by frame, the triple nearest the previous frame's is kept, so importers
    that interpolate channels (Blender's F-curves) never see a spurious flip near b = ±90°.
    """
    first = matrix_to_euler(R, order)
    second = np.stack([first[..., 0] + 180.0, 180.0 - first[..., 1], first[..., 2] + 180.0], axis=-1)
    out = np.empty_like(first)
    out[0] = first[0]
    for t in range(1, first.shape[0]):
        prev = out[t - 1]
        # Each triple shifted by the multiples of 360° nearest the previous frame, then the closer one.
        a = first[t] + 360.0 * np.round((prev - first[t]) / 360.0)
        b = second[t] + 360.0 * np.round((prev - second[t]) / 360.0)
        closer = np.abs(b - prev).sum(-1, keepdims=True) < np.abs(a - prev).sum(-1, keepdims=True)
        out[t] = np.where(closer, b, a)
    return out


def bvh_rig(joints: np.ndarray, skeleton: Skeleton = HUMANML3D_22, *, stretch: bool = False) -> RigPose:
    """Solve the BVH rig of a motion: rest offsets from its own geometry, per-joint rotations.

    Args:
        joints: (T, J, 3) metres (validated: shape, frames, finite).
        stretch: the file will carry per-frame translations on every joint (see `bvh_text`), so
            positions are exact and rotations aim along the observed bones.
    Returns:
        RigPose; ``max_error_m`` is how far a re-import can be from `joints`.
    """
    joints = check_joints(joints, skeleton)
    rest = motion_rest_offsets(joints, skeleton)
    rig = solve_rig_rotations(joints, rest, skeleton.parents, aim_from_solved=not stretch)
    if stretch:
        return replace(rig, positions=joints, max_error_m=0.0)
    return rig


def _local_translations(joints: np.ndarray, rig: RigPose, skeleton: Skeleton) -> np.ndarray:
    """(T, J, 3) each joint's offset from its parent in the parent's frame (root: world position)."""
    out = np.empty_like(joints)
    out[:, 0] = joints[:, 0]
    for j, p in enumerate(skeleton.parents):
        if p >= 0:
            out[:, j] = np.einsum("tba,tb->ta", rig.global_rotations[:, p], joints[:, j] - joints[:, p])
    return out


def bvh_text(
    joints: np.ndarray,
    fps: float = FPS,
    *,
    skeleton: Skeleton = HUMANML3D_22,
    units: Literal["m", "cm"] = "m",
    stretch: bool = False,
) -> tuple[str, RigPose]:
    """The BVH file content of a motion.

    Args:
        joints: (T, J, 3) metres, y up.
        fps: frames per second (Frame Time = 1 / fps).
        units: length unit of the file.
        stretch: give every joint 6 channels (``Xposition Yposition Zposition`` + rotations) so that
            bones may change length per frame and any motion re-imports exactly (a generated motion's
            bones drift by millimetres); off by default because retargeting tools expect rigid bones.
    Returns:
        (text, rig): the file content and the solved rig (its ``max_error_m`` in metres).
    """
    if units not in _UNIT_SCALE:
        raise MotionDataError(f"BVH units must be 'm' or 'cm', got {units!r}")
    if not np.isfinite(fps) or fps <= 0:
        raise MotionDataError(f"fps must be a positive number, got {fps}")
    rig = bvh_rig(joints, skeleton, stretch=stretch)
    scale = _UNIT_SCALE[units]
    out = io.StringIO()
    _write_hierarchy(out, skeleton, rig.rest_offsets * scale, _END_SITE_LENGTH * scale, stretch)
    T = rig.local_rotations.shape[0]
    euler = continuous_euler(rig.local_rotations)  # (T, J, 3)
    # MOTION columns follow the joints in HIERARCHY (depth-first) order, not the skeleton's index order.
    order = hierarchy_order(skeleton)
    if stretch:
        trans = _local_translations(rig.positions, rig, skeleton) * scale
        data = np.concatenate([trans[:, order], euler[:, order]], axis=2).reshape(T, -1)
    else:
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


def _write_hierarchy(out: io.StringIO, skeleton: Skeleton, offsets: np.ndarray, end_length: float,
                     stretch: bool = False) -> None:
    children = [skeleton.children(j) for j in range(skeleton.n_joints)]

    def fmt(v: np.ndarray) -> str:
        return " ".join(f"{x:.6f}" for x in v)

    def joint(j: int, depth: int) -> None:
        ind = "\t" * depth
        kind = "ROOT" if skeleton.parents[j] < 0 else "JOINT"
        chans = ROOT_CHANNELS if kind == "ROOT" or stretch else JOINT_CHANNELS
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
    stretch: bool = False,
) -> RigPose:
    """Write `joints` (T, J, 3) metres as a BVH file, atomically.

    Returns:
        The solved rig; ``max_error_m`` is the largest distance (metres) between the joints a
        BVH reader reconstructs and `joints` (logged as a warning above 1 mm: a generated motion
        whose bone lengths drift cannot be reproduced exactly by a fixed-length rig; pass
        ``stretch=True`` for an exact file with per-frame bone translations).
    """
    text, rig = bvh_text(joints, fps, skeleton=skeleton, units=units, stretch=stretch)
    with output_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    level = logging.WARNING if rig.max_error_m > 1e-3 else logging.INFO
    log.log(level, "wrote %s: %d frames, rig reproduces the joints within %.2f mm", path,
            rig.local_rotations.shape[0], rig.max_error_m * 1e3)
    return rig
