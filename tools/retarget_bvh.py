"""A 22-joint motion retargeted onto the user's own BVH skeleton (`ikmo export --rig character.bvh`).

The user's rig keeps its joint names, hierarchy, rest OFFSETs (bone lengths), End Sites, units and
up axis; its joints are matched onto the 22 SMPL joints by `motion_model.data.rigs` (the same
mapping as the importer). Per frame, parents first, every matched joint turns so that its bones
point where the motion's do:

- each user joint that has a target gets one: a matched joint the motion's joint position; a joint
  on an interpolated chain (the spine between pelvis and neck) the point at the same arc-length
  fraction along the motion's own chain (pelvis → spine1 → spine2 → spine3 → neck);
- a joint aims along the motion's direction from its own target to that of the nearest targeted
  joint below each of its children: one → the smallest
  swing from the parent's frame; several → the Kabsch rotation of their rest vectors; none → it
  follows its parent (local rotation zero). Joints without a target (twist, fingers, face, props)
  stay at rest relative to their parent;
- the motion is turned to face the way the rig faces at rest (its left = the left hip's side) and
  scaled by the ratio of the rig's leg length to the motion's, so the feet reach the floor; the
  root carries the pelvis path, offset to the rig's own floor height.

Only directions are kept (the rig's bone lengths are its own), so a mapped joint's bone points
along the motion's bone; positions differ where the proportions do.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence

import numpy as np

from ikmo.motion_model.data.bvh import BVHMotion, bvh_rest_positions, read_bvh
from ikmo.motion_model.data.rig_match import Along
from ikmo.motion_model.data.rigs import UNITS, RigMap, along_points, guess_unit, resolve_rig, up_rotation
from ikmo.motion_model.errors import RigMappingError
from ikmo.motion_model.representation.skeleton import FPS, HUMANML3D_22, children_lists

from .export_bvh import continuous_euler
from .export_common import check_joints, output_file
from .rig_rotations import aim_joints

log = logging.getLogger(__name__)

_NAMES = HUMANML3D_22.joint_names
_SPINE = [_NAMES.index(j) for j in ("pelvis", "spine1", "spine2", "spine3", "neck")]


def _leg_length(j22: np.ndarray) -> float:
    """Mean hip→knee→ankle length of (…, 22, 3) joints (median over frames)."""
    out = 0.0
    for a, b, c in ((1, 4, 7), (2, 5, 8)):
        out += float(np.median(np.linalg.norm(j22[..., a, :] - j22[..., b, :], axis=-1)
                               + np.linalg.norm(j22[..., b, :] - j22[..., c, :], axis=-1)))
    return out / 2


def _user_targets(rig: RigMap, names: Sequence[str], rest: np.ndarray, motion_f: np.ndarray) -> dict[int, np.ndarray]:
    """{user joint index: (T, 3) target point in the rig's file frame} (see module doc)."""
    index = {n: i for i, n in enumerate(names)}
    out: dict[int, np.ndarray] = {}
    for k, src in enumerate(rig.targets):
        if isinstance(src, str):
            out[index[src]] = motion_f[:, k]
    spine = rig.targets[_NAMES.index("spine1")]
    if isinstance(spine, Along) and len(spine.chain) > 2:
        chain = [index[n] for n in spine.chain]
        seg = np.linalg.norm(np.diff(rest[chain], axis=0), axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seg)]) / max(float(seg.sum()), 1e-12)
        for j, t in zip(chain[1:-1], cum[1:-1], strict=True):
            out.setdefault(j, along_points(motion_f[:, _SPINE], float(t)))
    return out


def retarget_to_rig(joints: np.ndarray, rig_path: str | os.PathLike[str]) -> tuple[BVHMotion, np.ndarray, np.ndarray]:
    """Solve the rig's rotations for a motion.

    Args:
        joints: (T, 22, 3) metres, y up, facing +Z at frame 0.
        rig_path: the user's BVH (only its HIERARCHY is used).
    Returns:
        (the rig as read, root positions (T, 3) in its file units and axes, local rotations
        (T, J, 3, 3) of its joints relative to their parents).
    Raises:
        InputFileError (unreadable rig), RigMappingError (its joints do not map), MotionDataError.
    """
    joints = check_joints(joints)
    user = read_bvh(rig_path)
    names = list(user.names + user.end_site_names)
    parents = list(user.parents) + [p for p, _ in user.end_sites]
    rest = bvh_rest_positions(user)
    try:
        rmap = resolve_rig(names, parents, None, rest, user.n_joints)
    except RigMappingError as e:
        raise RigMappingError(f"{rig_path}: {e}", missing=e.missing, family=e.family) from e
    rest22 = rmap.apply(rest[None], names)[0]
    unit = guess_unit(rest22[None])
    scale = UNITS[unit]
    R_up = up_rotation(rest22[None] * scale)  # file → y up
    rest_y = rest22 * scale @ R_up.T
    left = rest_y[1] - rest_y[2]
    yaw = np.arctan2(left[2], left[0])  # the rig's left, turned from +X about +Y
    c, s = np.cos(-yaw), np.sin(-yaw)
    Y = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    ratio = _leg_length(rest_y) / max(_leg_length(joints), 1e-9)
    floor = float(rest_y[:, 1].min())
    moved = joints * ratio + np.array([0.0, floor, 0.0])
    A = R_up.T @ Y  # motion's y-up frame → the rig's file frame
    motion_f = moved @ A.T / scale  # (T, 22, 3) file units and axes
    targets = _user_targets(rmap, names, rest, motion_f)

    J = user.n_joints
    children = children_lists(parents)

    def aimed(c: int) -> int | None:
        """The nearest joint at or below `c` that has a target."""
        stack = [c]
        while stack:
            k = stack.pop(0)
            if k in targets:
                return k
            stack.extend(children[k])
        return None

    # A joint with a target aims at the nearest targeted joint below each child, from its own target.
    aims = [[(d, rest[d] - rest[j]) for d in (aimed(c) for c in children[j]) if d is not None] if j in targets else []
            for j in range(J)]
    pelvis = names.index(str(rmap.targets[0]))
    root_pos = targets[pelvis] - (rest[pelvis] - rest[0])  # the root (joint 0) carries the pelvis path
    _, L, _ = aim_joints(parents, user.offsets, root_pos, aims, targets)
    log.info("retargeted onto %s (%s rig, unit %s, %d joints; %d with a target; guessed: %s)", rig_path,
             rmap.family or "unknown", unit, J, len([t for t in targets if t < J]), ", ".join(rmap.guessed) or "none")
    return user, root_pos, L


def write_retargeted_bvh(path: str | os.PathLike[str], joints: np.ndarray, rig_path: str | os.PathLike[str],
                         fps: float = FPS) -> None:
    """Write `joints` (T, 22, 3) metres retargeted onto the BVH skeleton at `rig_path`, atomically.

    The file has the rig's HIERARCHY (names, OFFSETs, End Sites, each joint's Euler order; ZXY where
    a joint had none); the root gets ``Xposition Yposition Zposition`` + rotations, the others three
    rotation channels.
    """
    user, root_pos, L = retarget_to_rig(joints, rig_path)
    orders = [o if len(o) == 3 else "ZXY" for o in user.rotation_orders]
    euler = np.empty(L.shape[:3])
    for order in set(orders):
        cols = [j for j, o in enumerate(orders) if o == order]
        euler[:, cols] = continuous_euler(L[:, cols], order)
    out = io.StringIO()
    children = children_lists(user.parents)
    ends: dict[int, list[np.ndarray]] = {}
    for p, off in user.end_sites:
        ends.setdefault(p, []).append(off)
    order_written: list[int] = []

    def fmt(v: np.ndarray) -> str:
        return " ".join(f"{x:.6f}" for x in v)

    def joint(j: int, depth: int) -> None:
        ind = "\t" * depth
        order_written.append(j)
        rot = " ".join(f"{a}rotation" for a in orders[j])
        chans = f"6 Xposition Yposition Zposition {rot}" if user.parents[j] < 0 else f"3 {rot}"
        out.write(f"{ind}{'ROOT' if user.parents[j] < 0 else 'JOINT'} {user.names[j]}\n{ind}{{\n")
        out.write(f"{ind}\tOFFSET {fmt(user.offsets[j])}\n{ind}\tCHANNELS {chans}\n")
        for c in children[j]:
            joint(c, depth + 1)
        for off in ends.get(j, []):
            out.write(f"{ind}\tEnd Site\n{ind}\t{{\n{ind}\t\tOFFSET {fmt(off)}\n{ind}\t}}\n")
        out.write(f"{ind}}}\n")

    out.write("HIERARCHY\n")
    joint(0, 0)
    T = L.shape[0]
    data = np.concatenate([root_pos, euler[:, order_written].reshape(T, -1)], axis=1)
    out.write(f"MOTION\nFrames: {T}\nFrame Time: {1.0 / fps:.8f}\n")
    np.savetxt(out, data, fmt="%.6f", delimiter=" ")
    with output_file(path) as tmp:
        tmp.write_text(out.getvalue(), encoding="utf-8")
    log.info("wrote %s: %d frames on the rig of %s", path, T, rig_path)
