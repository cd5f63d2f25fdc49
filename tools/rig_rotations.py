"""Joint positions → per-joint rotations of a rig (BVH, SMPL), where a joint turns all its children.

Why this is not `motion_model.representation.features.inverse_kinematics`: HumanML3D's IK stores a swing
per *bone* (on the child joint), so the three bones leaving the pelvis (hips, spine1) and the three
leaving spine3 (neck, collars) turn independently. A BVH or SMPL rig has one rotation per *joint*
that moves every child together. Re-importing per-bone rotations into such a rig puts those
children in the wrong places.

The scheme here, per frame, parents before children (all vectorised over frames):

- a joint with one child: the smallest rotation, relative to the parent's world frame, that turns
  the child's rest offset onto the observed bone direction (a "swing"; twist follows the parent,
  as HumanML3D does, so it is smooth and deterministic);
- a joint with several children: the least-squares rotation (Kabsch/SVD) that maps the children's
  rest offsets onto the observed child vectors. With rest offsets taken from the motion's own
  geometry (`motion_rest_offsets`), a rigid joint (HumanML3D data: the hips and spine1 are fixed in
  the pelvis frame) is reproduced exactly; a non-rigid one (a generated motion) in the
  least-squares sense, and the residual is measured and reported;
- a leaf joint: identity relative to its parent (a hand continues the forearm);
- with ``aim_from_solved=True`` each bone aims from where forward kinematics has put its parent
  joint, not from the observed parent position, so bone-length noise cannot accumulate along a
  chain (used for BVH, whose bone lengths are the motion's own). SMPL export, whose rest bone
  lengths are the body model's, aims along the observed bone directions instead.

`aim_joints` is that solve in general form (any rest vectors, any targets): `solve_rig_rotations`
(BVH, SMPL), the retargeting onto a user's rig (`tools.retarget_bvh`) and the GLB's bind pose
(`tools.export_glb`) all call it.

Frames: world rotation ``G_j = G_parent @ L_j``; position ``p_c = p_j + G_j @ offset_c``, the BVH and
SMPL convention (column vectors).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ikmo.motion_model.representation.rotations import quat_between, quat_to_matrix
from ikmo.motion_model.representation.skeleton import HUMANML3D_22, Skeleton, children_lists

log = logging.getLogger(__name__)

_EPS = 1e-9

# Rest directions of a T-pose (SMPL's rest convention: arms out to the sides, palms down, feet
# forward), y up, facing +Z, left = +X. Indexed by the joint at the END of each bone. Only the
# direction matters: lengths come from the motion or the body model. The HumanML3D raw offsets
# (arms hanging down) are not used as a rest pose because animation tools expect a T-pose.
T_POSE_DIRECTIONS_22 = np.array(
    [[0, 0, 0], [0.6, -0.8, 0], [-0.6, -0.8, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, -1, 0],
     [0, -1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [0.6, 0.8, 0], [-0.6, 0.8, 0], [0, 1, 0],
     [1, 0, 0], [-1, 0, 0], [1, 0, 0], [-1, 0, 0], [1, 0, 0], [-1, 0, 0]],
    dtype=np.float64,
)  # fmt: skip
T_POSE_DIRECTIONS_22 /= np.maximum(np.linalg.norm(T_POSE_DIRECTIONS_22, axis=1, keepdims=True), _EPS)


def rotation_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smallest rotation turning direction `u` onto direction `v`: (..., 3) each → (..., 3, 3).

    A matrix view of `motion_model.representation.rotations.quat_between` (antiparallel vectors: a half turn).
    """
    u, v = np.broadcast_arrays(np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64))
    return quat_to_matrix(quat_between(u, v))


def kabsch(rest: np.ndarray, observed: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Least-squares rotation R minimising Σ_k w_k ‖R @ rest_k − observed_k‖² (no translation).

    Args:
        rest: (..., K, 3) vectors in the rest frame.
        observed: (..., K, 3) the same vectors observed, broadcastable with `rest`.
        weights: (K,) optional non-negative weights.
    Returns:
        (..., 3, 3) proper rotations (det +1).
    """
    w = np.ones(rest.shape[-2]) if weights is None else np.asarray(weights, dtype=np.float64)
    H = np.einsum("...ka,...kb,k->...ab", rest, observed, w)
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(Vt.swapaxes(-1, -2) @ U.swapaxes(-1, -2)))
    d = np.where(d == 0, 1.0, d)
    D = np.broadcast_to(np.eye(3), d.shape + (3, 3)).copy()
    D[..., 2, 2] = d
    return Vt.swapaxes(-1, -2) @ D @ U.swapaxes(-1, -2)


def motion_rest_offsets(
    joints: np.ndarray,
    skeleton: Skeleton = HUMANML3D_22,
    directions: np.ndarray = T_POSE_DIRECTIONS_22,
) -> np.ndarray:
    """Rest offsets (a T-pose) carrying the motion's own bone lengths and multi-child geometry.

    Single-child bones point along `directions` with the motion's median bone length. The children
    of a multi-child joint keep their observed shape relative to each other: a generalised
    Procrustes mean of the child vectors in the joint's own frame, turned to best match
    `directions` (so the rest pose is upright and faces +Z). For rigid data that shape is exact.

    Args:
        joints: (T, J, 3) metres.
        directions: (J, 3) unit rest directions of each bone (row = child joint).
    Returns:
        (J, 3) float64 offsets, metres; row 0 (the root) is zero.
    """
    parents = skeleton.parents
    lengths = np.zeros(len(parents))
    for c, p in enumerate(parents):
        if p >= 0:
            lengths[c] = float(np.median(np.linalg.norm(joints[:, c] - joints[:, p], axis=-1)))
    offsets = directions * lengths[:, None]
    for j, ch in enumerate(children_lists(parents)):
        if len(ch) < 2:
            continue
        observed = joints[:, ch] - joints[:, j : j + 1]  # (T, K, 3)
        seed = offsets[ch]
        template = seed
        for _ in range(4):  # converges in one step for rigid data; a few for noisy data
            R = kabsch(template, observed)  # (T, 3, 3)
            template = np.einsum("tba,tkb->tka", R, observed).mean(axis=0)
        offsets[ch] = template @ kabsch(template, seed).T
    return offsets


@dataclass(frozen=True)
class RigPose:
    """A motion expressed as rig rotations.

    Attributes:
        root_position: (T, 3) metres, world position of joint 0.
        local_rotations: (T, J, 3, 3) rotation of each joint relative to its parent (root: world).
        global_rotations: (T, J, 3, 3) world rotation of each joint.
        rest_offsets: (J, 3) metres, rest offset of each joint from its parent.
        positions: (T, J, 3) metres, forward kinematics of the above (what a rig reproduces).
        max_error_m: largest distance between `positions` and the input joints.
    """

    root_position: np.ndarray
    local_rotations: np.ndarray
    global_rotations: np.ndarray
    rest_offsets: np.ndarray
    positions: np.ndarray
    max_error_m: float


def aim_joints(
    parents: Sequence[int],
    offsets: np.ndarray,
    root_position: np.ndarray,
    aims: Sequence[Sequence[tuple[int, np.ndarray]]],
    targets: Mapping[int, np.ndarray],
    *,
    aim_from_solved: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one solve behind every rig pose here: per frame, parents first, each joint turns so that
    its rest vectors point at their targets (see the module doc).

    Args:
        parents: parent index of each joint (and of any further points, e.g. BVH End Sites, that
            `aims` and `targets` may name); joints 0..J-1, J = len(aims), parents before children.
        offsets: (≥J, 3) rest offset of each joint from its parent (forward kinematics).
        root_position: (T, 3) world position of the root joint.
        aims: per joint j, the pairs (d, rest vector from j towards d in the rest pose, (3,)):
            none → j follows its parent; one → the smallest swing of that vector onto the direction
            from j to ``targets[d]``; several → the Kabsch rotation of all of them.
        targets: {point index: (T, 3) world position}; every aimed-at point, and every aiming
            joint unless `aim_from_solved`.
        aim_from_solved: aim from the forward-kinematics position of j instead of ``targets[j]``.
    Returns:
        global rotations (T, J, 3, 3), local rotations (T, J, 3, 3), positions (T, J, 3).
    """
    J = len(aims)
    T = root_position.shape[0]
    G = np.empty((T, J, 3, 3))
    L = np.empty((T, J, 3, 3))
    fk = np.empty((T, J, 3))
    eye = np.broadcast_to(np.eye(3), (T, 3, 3))
    for j in range(J):
        p = parents[j]
        G_parent = eye if p < 0 else G[:, p]
        fk[:, j] = root_position if p < 0 else fk[:, p] + np.einsum("tab,b->ta", G[:, p], offsets[j])
        if not aims[j]:
            G[:, j] = G_parent
        else:
            origin = fk[:, j] if aim_from_solved else targets[j]
            if len(aims[j]) == 1:
                d, rest = aims[j][0]
                target = targets[d] - origin
                swing = rotation_between(np.einsum("tab,b->ta", G_parent, rest), target)
                # A zero-length observed bone has no direction: keep the parent's frame.
                swing[np.linalg.norm(target, axis=-1) < 1e-7] = np.eye(3)
                G[:, j] = swing @ G_parent
            else:
                rest_vectors = np.stack([r for _, r in aims[j]])
                observed = np.stack([targets[d] - origin for d, _ in aims[j]], axis=1)
                G[:, j] = kabsch(rest_vectors, observed)
        L[:, j] = G_parent.swapaxes(-1, -2) @ G[:, j]
    return G, L, fk


def solve_rig_rotations(
    joints: np.ndarray,
    rest_offsets: np.ndarray,
    parents: Sequence[int] = HUMANML3D_22.parents,
    *,
    aim_from_solved: bool = True,
) -> RigPose:
    """Per-joint rotations that make a rig with `rest_offsets` follow `joints` (see module doc).

    Args:
        joints: (T, J, 3) metres, parents before children.
        rest_offsets: (J, 3) metres, the rig's rest offset of each joint from its parent.
        aim_from_solved: aim each bone from the forward-kinematics position of its parent joint
            (exact positions when lengths match); False aims along the observed bone direction.
    Returns:
        RigPose with rotations, forward-kinematics positions and the largest position error.
    """
    joints = np.asarray(joints, dtype=np.float64)
    rest_offsets = np.asarray(rest_offsets, dtype=np.float64)
    J = joints.shape[1]
    aims = [[(c, rest_offsets[c]) for c in children] for children in children_lists(parents)]
    G, L, fk = aim_joints(parents, rest_offsets, joints[:, 0], aims, {j: joints[:, j] for j in range(J)},
                          aim_from_solved=aim_from_solved)
    err = float(np.linalg.norm(fk - joints, axis=-1).max())
    return RigPose(joints[:, 0].copy(), L, G, rest_offsets, fk, err)


def rig_forward(
    root_position: np.ndarray,
    local_rotations: np.ndarray,
    rest_offsets: np.ndarray,
    parents: Sequence[int] = HUMANML3D_22.parents,
) -> np.ndarray:
    """Forward kinematics of a rig: (T, 3) root, (T, J, 3, 3) local rotations → (T, J, 3) positions."""
    T, J = local_rotations.shape[:2]
    G = np.empty_like(local_rotations)
    pos = np.empty((T, J, 3))
    for j, p in enumerate(parents):
        if p < 0:
            G[:, j] = local_rotations[:, j]
            pos[:, j] = root_position
        else:
            G[:, j] = G[:, p] @ local_rotations[:, j]
            pos[:, j] = pos[:, p] + np.einsum("tab,b->ta", G[:, p], rest_offsets[j])
    return pos


def project_to_rig(joints: np.ndarray, skeleton: Skeleton = HUMANML3D_22) -> np.ndarray:
    """The nearest motion a rigid rig with `skeleton`'s bone lengths can play: (T, J, 3) → (T, J, 3).

    A diffusion model's joints (recovered from root-relative positions) let bones stretch by
    centimetres and the hips/spine fan of the pelvis deform; a BVH or SMPL rig cannot, so every file
    of one motion would disagree. This fits the rig (rest shape = the motion's own rigidified
    multi-child geometry, bone lengths = the skeleton's) and returns its forward kinematics: the root
    path is kept exactly, bone directions as closely as a rigid rig allows.
    """
    joints = np.asarray(joints, dtype=np.float64)
    rest = motion_rest_offsets(joints, skeleton)
    norms = np.linalg.norm(rest, axis=-1, keepdims=True)
    rest = np.where(norms > 1e-9, rest / np.maximum(norms, 1e-9), 0.0) * skeleton.bone_lengths[:, None]
    return solve_rig_rotations(joints, rest, skeleton.parents).positions
