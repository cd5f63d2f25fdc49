"""The HumanML3D motion representation: joint positions ⇄ per-frame features, kinematics, mirroring.

One implementation of HumanML3D's processing (``motion_representation.ipynb`` / ``process_file``,
``common/skeleton.py``, ``recover_from_ric``) for any `Skeleton`: 263 features for the 22 SMPL joints,
251 for KIT's 21. Conventions: metres, y up, frame 0 faces +Z, left is +X, 20 fps.

Feature layout of one row (J joints, see `feature_layout`):

====================  ============  ===============================================================
block                 size          meaning
====================  ============  ===============================================================
``root_rot_vel``      1             arcsin of the y component of the frame-to-frame root quaternion
                                    (half the heading change, radians)
``root_lin_vel``      2             root xz displacement to the next frame, in the root frame (m)
``root_y``            1             pelvis height (m)
``ric``               (J-1)·3       joints 1..J-1 relative to the root's xz, rotated to face +Z (m)
``rot6d``             (J-1)·6       6D local rotations of joints 1..J-1 (bone convention below)
``local_vel``         J·3           joint displacement to the next frame, in the root frame (m)
``contacts``          4             left ankle, left toe, right ankle, right toe: 1 = in contact
====================  ============  ===============================================================

Bone convention (HumanML3D's): the rotation stored at joint ``c`` orients the bone from its parent
to ``c``; its rest direction is ``skel.raw_offsets[c]``. Rotations accumulate along the kinematic
chains: a joint's rotation is relative to its parent's when it is its parent's first child,
otherwise (the joint starts a new chain, e.g. the collars of SMPL) relative to the *root's*.
The root's quaternion is HumanML3D's ``r_rot``: the yaw taking the body's forward to +Z
(world → body frame), not the body's orientation.

All functions take torch tensors or numpy arrays (numpy in, numpy out; computed in float64) and
are batched over leading dimensions. The torch path is differentiable; `features_to_joints` is the
one the diffusion guidance backpropagates through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ikmo.motion_model.errors import MotionDataError
from ikmo.motion_model.representation.rotations import (
    cont6d_to_quat,
    numpy_compatible,
    quat_between,
    quat_conj,
    quat_identity,
    quat_mul,
    quat_rotate,
    quat_to_cont6d,
)
from ikmo.motion_model.representation.skeleton import HUMANML3D_22, Skeleton

# HumanML3D smooths the forward direction with a Gaussian of σ = 20 frames (truncated at 4σ, as
# scipy's gaussian_filter1d does) before deriving the root rotation of the features.
FORWARD_SMOOTH_SIGMA = 20.0
DEFAULT_FEET_THRESHOLD = 0.002


# ------------------------------------------------------------------------------ feature layout


@dataclass(frozen=True)
class FeatureLayout:
    """Slices of each block of a feature row for a skeleton of J joints (see the module docstring)."""

    n_joints: int
    root_rot_vel: slice
    root_lin_vel: slice
    root_y: slice
    ric: slice
    rot6d: slice
    local_vel: slice
    contacts: slice

    @property
    def dim(self) -> int:
        return self.contacts.stop

    def blocks(self) -> dict[str, slice]:
        """Block name → slice, in feature order."""
        return {n: getattr(self, n) for n in
                ("root_rot_vel", "root_lin_vel", "root_y", "ric", "rot6d", "local_vel", "contacts")}


def feature_layout(skel: Skeleton = HUMANML3D_22) -> FeatureLayout:
    """The `FeatureLayout` of `skel` (263 columns for HUMANML3D_22, 251 for KIT_21)."""
    j = skel.n_joints
    ric = 4 + (j - 1) * 3
    rot = ric + (j - 1) * 6
    vel = rot + j * 3
    return FeatureLayout(j, slice(0, 1), slice(1, 3), slice(3, 4), slice(4, ric), slice(ric, rot),
                         slice(rot, vel), slice(vel, vel + 4))


# -------------------------------------------------------------------------- skeleton helpers


def rotation_parents(skel: Skeleton) -> tuple[int, ...]:
    """For each joint, the joint whose accumulated rotation its local rotation is relative to.

    HumanML3D's kinematic chains continue through a joint's first (lowest-index) child; every other
    child starts a new chain whose rotation restarts from the root's. Root entry is -1.
    """
    out = [-1]
    for c in range(1, skel.n_joints):
        p = skel.parents[c]
        out.append(p if c == min(skel.children(p)) else 0)
    return tuple(out)


def _const(x: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x, dtype=like.dtype, device=like.device)


def _check_joints(joints: torch.Tensor, skel: Skeleton, min_frames: int = 1) -> None:
    if joints.dim() < 3 or joints.shape[-2:] != (skel.n_joints, 3) or joints.shape[-3] < min_frames:
        raise MotionDataError(
            f"joints must have shape (..., T>={min_frames}, {skel.n_joints}, 3) for skeleton "
            f"{skel.name!r}, got {tuple(joints.shape)}: pass positions in metres, one row per frame"
        )


def _check_features(features: torch.Tensor, skel: Skeleton) -> None:
    if features.dim() < 2 or features.shape[-1] != skel.feature_dim:
        raise MotionDataError(
            f"features must have shape (..., N, {skel.feature_dim}) for skeleton {skel.name!r}, "
            f"got {tuple(features.shape)}: check the dataset (263 = HumanML3D, 251 = KIT-ML)"
        )


def _across(joints: torch.Tensor, skel: Skeleton, ik_order: bool) -> torch.Tensor:
    """The body's left-to-right axis sum used to find the facing direction, (..., 3).

    With ``ik_order`` it reproduces HumanML3D's ``inverse_kinematics_np``, which unpacks the face
    joints as ``l_hip, r_hip, sdr_r, sdr_l`` although they are stored (r_hip, l_hip, r_sdr, l_sdr):
    its hip term points the other way, so its "across" is shoulders minus hips. The features depend
    on that quirk, so it is kept for them; ``process_file``'s initial facing uses the intended sum.
    """
    r_hip, l_hip, r_sdr, l_sdr = skel.face_joints
    hips = joints[..., l_hip, :] - joints[..., r_hip, :] if ik_order else \
        joints[..., r_hip, :] - joints[..., l_hip, :]
    return hips + joints[..., r_sdr, :] - joints[..., l_sdr, :]


def _forward_from_across(across: torch.Tensor) -> torch.Tensor:
    """Horizontal facing direction up × across, not normalised. across: (..., 3)."""
    up = torch.zeros_like(across)
    up[..., 1] = 1.0
    return torch.linalg.cross(up, across, dim=-1)


def _xz(v: torch.Tensor) -> torch.Tensor:
    """The horizontal part of vectors (..., 3): y set to 0."""
    return v * v.new_tensor([1.0, 0.0, 1.0])


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gaussian_smooth_time(x: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Gaussian smoothing along the frame axis of ``x (..., T, C)``, edges extended by the nearest
    frame: scipy's ``gaussian_filter1d(x, sigma, axis=-2, mode='nearest')``, differentiably."""
    radius = int(truncate * float(sigma) + 0.5)
    offs = torch.arange(-radius, radius + 1, device=x.device)
    w = torch.exp(-0.5 * (offs.to(x.dtype) / sigma) ** 2)
    w = w / w.sum()
    t = x.shape[-2]
    idx = (torch.arange(t, device=x.device)[:, None] + offs[None, :]).clamp(0, t - 1)  # (T, K)
    return torch.einsum("...tkc,k->...tc", x[..., idx, :], w)


def facing_quat(joints: torch.Tensor, skel: Skeleton = HUMANML3D_22, smooth_sigma: float | None = None,
                ik_order: bool = False) -> torch.Tensor:
    """Root yaw quaternions ``(..., T, 4)`` that turn each frame's forward direction onto +Z.

    joints: (..., T, J, 3). ``smooth_sigma`` (frames) smooths the forward direction over time as
    HumanML3D's features do (σ = 20). The default is the body's true facing (hips and shoulders);
    ``ik_order=True`` is HumanML3D's feature convention (see `_across`), used by `inverse_kinematics`.
    """
    forward = _forward_from_across(_unit(_across(joints, skel, ik_order)))
    if smooth_sigma:
        forward = gaussian_smooth_time(forward, smooth_sigma)
    target = torch.zeros_like(forward)
    target[..., 2] = 1.0
    return quat_between(_unit(forward), target)


# ---------------------------------------------------------------------------------- kinematics


@numpy_compatible
def forward_kinematics(local_quats: torch.Tensor, root_pos: torch.Tensor, skel: Skeleton = HUMANML3D_22,
                       offsets: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
    """Joint positions from HumanML3D-convention local rotations.

    local_quats: (..., J, 4) unit quaternions (w, x, y, z); index 0 is the root quaternion.
    root_pos: (..., 3) metres. offsets: (J, 3) or (..., J, 3) rest bone vectors in metres
    (default ``skel.offsets()``: raw direction × target length).
    Returns (..., J, 3) metres.
    """
    if local_quats.shape[-2:] != (skel.n_joints, 4):
        raise MotionDataError(
            f"local_quats must be (..., {skel.n_joints}, 4), got {tuple(local_quats.shape)}")
    off = _const(skel.offsets(), local_quats) if offsets is None else torch.as_tensor(
        offsets, dtype=local_quats.dtype, device=local_quats.device)
    rparents = rotation_parents(skel)
    glob: list[torch.Tensor] = [local_quats[..., 0, :]]
    pos: list[torch.Tensor] = [root_pos.expand(local_quats.shape[:-2] + (3,))]
    for c in range(1, skel.n_joints):
        g = quat_mul(glob[rparents[c]], local_quats[..., c, :])
        glob.append(g)
        pos.append(pos[skel.parents[c]] + quat_rotate(g, off[..., c, :]))
    return torch.stack(pos, dim=-2)


def _bone_quats(joints: torch.Tensor, skel: Skeleton) -> torch.Tensor:
    """Shortest-arc rotations from each rest direction to each bone, (..., J-1, 4) for joints 1..J-1."""
    parents = list(skel.parents[1:])
    bones = joints[..., 1:, :] - joints[..., parents, :]
    raw = _const(skel.raw_offsets[1:], joints)
    return quat_between(raw.expand_as(bones), bones)


@numpy_compatible
def inverse_kinematics(joints: torch.Tensor, skel: Skeleton = HUMANML3D_22,
                       smooth_forward: bool = False) -> torch.Tensor:
    """Local rotations (..., T, J, 4) of joint positions (..., T, J, 3), as HumanML3D's
    ``Skeleton.inverse_kinematics_np``.

    Each bone gets the shortest-arc rotation from its rest direction (no twist can be recovered
    from positions); the root gets `facing_quat` (HumanML3D's joint order quirk included, forward
    smoothed over time when ``smooth_forward``), with frame 0 set to the identity as HumanML3D does.
    ``forward_kinematics(inverse_kinematics(x), x[..., 0, :], skel, offsets)`` reproduces ``x`` when
    ``offsets`` carry x's bone lengths.
    """
    _check_joints(joints, skel)
    root = facing_quat(joints, skel, FORWARD_SMOOTH_SIGMA if smooth_forward else None, ik_order=True)
    first = quat_identity(root.shape[:-2] + (1,), root.dtype, root.device)
    root = torch.cat((first, root[..., 1:, :]), dim=-2)
    glob = torch.cat((root[..., None, :], _bone_quats(joints, skel)), dim=-2)  # (..., T, J, 4)
    rp = list(rotation_parents(skel)[1:])
    local = quat_mul(quat_conj(glob[..., rp, :]), glob[..., 1:, :])
    return torch.cat((root[..., None, :], local), dim=-2)


@numpy_compatible
def bone_lengths(joints: torch.Tensor, skel: Skeleton = HUMANML3D_22) -> torch.Tensor:
    """Length of the bone ending at each joint, (..., J) metres (0 for the root). joints: (..., J, 3)."""
    if joints.shape[-2:] != (skel.n_joints, 3):
        raise MotionDataError(f"joints must be (..., {skel.n_joints}, 3), got {tuple(joints.shape)}")
    bones = joints[..., 1:, :] - joints[..., list(skel.parents[1:]), :]
    return torch.cat((torch.zeros_like(bones[..., :1, 0]), bones.norm(dim=-1)), dim=-1)


# ----------------------------------------------------------------------------- canonicalisation


@numpy_compatible
def uniform_skeleton(joints: torch.Tensor, skel: Skeleton = HUMANML3D_22) -> torch.Tensor:
    """Retarget positions (..., T, J, 3) onto ``skel``'s bone lengths, as HumanML3D's ``uniform_skeleton``.

    Bone directions are kept; lengths become ``skel.bone_lengths``; the root trajectory is scaled by
    the ratio of the target's leg length to the source's (knee→ankle + ankle bone of
    ``skel.leg_joints``, measured on frame 0).
    """
    _check_joints(joints, skel)
    src_len = bone_lengths(joints[..., 0, :, :], skel)
    k, a = skel.leg_joints
    tgt_leg = float(skel.bone_lengths[k] + skel.bone_lengths[a])
    src_leg = src_len[..., k] + src_len[..., a]
    if bool((src_leg <= 1e-9).any()):
        raise MotionDataError(
            f"the legs of frame 0 have zero length (joints {k}, {a} of {skel.name!r}): the clip is degenerate"
        )
    scale = (tgt_leg / src_leg)[..., None, None]
    quats = inverse_kinematics(joints, skel)
    return forward_kinematics(quats, joints[..., 0, :] * scale, skel)


@numpy_compatible
def canonicalize(joints: torch.Tensor, skel: Skeleton = HUMANML3D_22, retarget: bool = True) -> torch.Tensor:
    """HumanML3D's canonical frame for positions (..., T, J, 3) in metres, y up.

    Retarget to ``skel`` (`uniform_skeleton`, unless ``retarget=False``), put the lowest joint of
    the whole clip on the floor (y = 0), move frame 0's root to x = z = 0, and turn the clip about
    +Y so that frame 0 faces +Z.
    """
    _check_joints(joints, skel)
    pos = uniform_skeleton(joints, skel) if retarget else joints
    floor = pos[..., 1].amin(dim=(-1, -2))[..., None, None]
    root0 = pos[..., :1, :1, :]
    shift = torch.stack((root0[..., 0], floor.expand_as(root0[..., 0]), root0[..., 2]), dim=-1)
    pos = pos - shift
    q0 = facing_quat(pos[..., :1, :, :], skel, ik_order=False)  # (..., 1, 4)
    return quat_rotate(q0[..., None, :], pos)


# ---------------------------------------------------------------------------------- features


@numpy_compatible
def foot_contacts(joints: torch.Tensor, skel: Skeleton = HUMANML3D_22,
                  threshold: float = DEFAULT_FEET_THRESHOLD) -> torch.Tensor:
    """Foot contact labels (..., T-1, 4) of positions (..., T, J, 3): 1.0 where the squared
    frame-to-frame displacement of (left ankle, left toe, right ankle, right toe) is below
    ``threshold`` (m², HumanML3D: 0.002)."""
    _check_joints(joints, skel, min_frames=2)
    feet = list(skel.feet_left) + list(skel.feet_right)
    disp = (joints[..., 1:, feet, :] - joints[..., :-1, feet, :]).square().sum(-1)
    return (disp < threshold).to(joints.dtype)


@numpy_compatible
def joints_to_features(joints: torch.Tensor, skel: Skeleton = HUMANML3D_22,
                       feet_threshold: float = DEFAULT_FEET_THRESHOLD,
                       canonical: bool = True) -> torch.Tensor:
    """HumanML3D features (..., T-1, D) of positions (..., T, J, 3) in metres (``process_file``).

    With ``canonical=True`` the positions first go through `canonicalize` (retarget, floor, origin,
    facing +Z); pass ``canonical=False`` when they are already canonical. D = ``skel.feature_dim``.
    """
    _check_joints(joints, skel, min_frames=2)
    if not bool(torch.isfinite(joints).all()):
        raise MotionDataError("joints contain NaN or inf: repair or drop the clip before extracting features")
    pos = canonicalize(joints, skel) if canonical else joints
    contacts = foot_contacts(pos, skel, feet_threshold)
    quats = inverse_kinematics(pos, skel, smooth_forward=True)  # (..., T, J, 4)
    r_rot = quats[..., 0, :]  # (..., T, 4)

    root_vel = quat_rotate(r_rot[..., 1:, :], pos[..., 1:, 0, :] - pos[..., :-1, 0, :])
    r_vel = quat_mul(r_rot[..., 1:, :], quat_conj(r_rot[..., :-1, :]))
    rot_vel = torch.asin(r_vel[..., 2:3].clamp(-1.0, 1.0))

    rel = pos - _xz(pos[..., 0, :])[..., None, :]
    ric = quat_rotate(r_rot[..., None, :], rel)  # (..., T, J, 3)
    root_y = ric[..., :-1, 0, 1:2]
    rot6d = quat_to_cont6d(quats[..., :-1, 1:, :])
    local_vel = quat_rotate(r_rot[..., :-1, None, :], pos[..., 1:, :, :] - pos[..., :-1, :, :])

    flat = pos.shape[:-3] + (pos.shape[-3] - 1, -1)
    return torch.cat(
        (rot_vel, root_vel[..., 0::2], root_y, ric[..., :-1, 1:, :].reshape(flat), rot6d.reshape(flat),
         local_vel.reshape(flat), contacts),
        dim=-1,
    )


def _root_yaw(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                  torch.Tensor]:
    """Integrate the root of features (..., N, D): half yaw angle, cos/sin of the yaw, root x, z; each (..., N).

    The root rotation of HumanML3D is a pure yaw, so rotating by it is a 2-D rotation of (x, z):
    far fewer operations than a general quaternion rotation, which matters inside guidance.
    """
    if features.dim() < 2 or features.shape[-1] < 4:
        raise MotionDataError(f"features must have shape (..., N, D>=4), got {tuple(features.shape)}")
    # The stored value is the half angle of the frame-to-frame quaternion.
    half = torch.cumsum(features[..., :-1, 0], dim=-1)
    half = torch.cat((torch.zeros_like(half[..., :1]), half), dim=-1)
    cos, sin = torch.cos(2.0 * half), torch.sin(2.0 * half)
    # r_pos[t] = Σ_{k=1..t} R_y(-θ_k) v_{k-1}: velocity row k-1 was expressed in the frame of k.
    vx, vz = features[..., :-1, 1], features[..., :-1, 2]
    c1, s1 = cos[..., 1:], sin[..., 1:]
    zero = torch.zeros_like(half[..., :1])
    px = torch.cat((zero, torch.cumsum(c1 * vx - s1 * vz, dim=-1)), dim=-1)
    pz = torch.cat((zero, torch.cumsum(s1 * vx + c1 * vz, dim=-1)), dim=-1)
    return half, cos, sin, px, pz


@numpy_compatible
def features_to_root(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Root rotation and position from features (..., N, D) (HumanML3D's ``recover_root_rot_pos``).

    Returns ``r_rot`` (..., N, 4): the yaw quaternion world → body frame (frame 0 is the identity),
    and ``r_pos`` (..., N, 3) metres: root xz integrated from the velocities, y from ``root_y``.
    """
    half, _, _, px, pz = _root_yaw(features)
    zero = torch.zeros_like(half)
    r_rot = torch.stack((torch.cos(half), zero, torch.sin(half), zero), dim=-1)
    return r_rot, torch.stack((px, features[..., 3], pz), dim=-1)


def root_heading(features: torch.Tensor) -> torch.Tensor:
    """Facing yaw ψ (..., N + 1) of every pose frame of raw features (..., N, D), radians from +Z
    towards +X: the integrated root yaw negated (ψ = −θ, frame 0 = 0; `_root_yaw`'s convention, one
    frame more: the last row's yaw velocity turns the last pose frame). Root targets built from it
    (`networks.root_targets`) give back the features' root channels exactly."""
    half = torch.cumsum(features[..., 0], dim=-1)
    return -2.0 * torch.cat([torch.zeros_like(half[..., :1]), half], dim=-1)


@numpy_compatible
def features_to_joints(features: torch.Tensor, skel: Skeleton = HUMANML3D_22) -> torch.Tensor:
    """Global joint positions (..., N, J, 3) in metres from features (..., N, D) (``recover_from_ric``).

    Vectorised (the only sequential step is a cumsum) and differentiable.
    """
    _check_features(features, skel)
    _, cos, sin, px, pz = _root_yaw(features)
    lay = feature_layout(skel)
    # The root is the body-frame point (0, root_y, 0); prepending it lets one expression place all J.
    ric = features[..., lay.ric].unflatten(-1, (skel.n_joints - 1, 3))
    root = F.pad(features[..., 3:4], (1, 1))[..., None, :]
    rx, y, rz = torch.cat((root, ric), dim=-2).unbind(-1)
    c, s = cos[..., None], sin[..., None]
    # Body frame → world is R_y(-θ): x' = c·x − s·z, z' = s·x + c·z, then add the root's xz.
    x = torch.addcmul(px[..., None], c, rx) - s * rz
    z = torch.addcmul(pz[..., None], s, rx) + c * rz
    return torch.stack((x, y, z), dim=-1)


@numpy_compatible
def features_to_local_rotations(features: torch.Tensor, skel: Skeleton = HUMANML3D_22
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Local rotations (..., N, J, 4) and root positions (..., N, 3) from features (..., N, D).

    Rotations follow this module's bone convention (root entry = ``r_rot``), so
    ``forward_kinematics(*features_to_local_rotations(f))`` is HumanML3D's ``recover_from_rot``.
    """
    _check_features(features, skel)
    r_rot, r_pos = features_to_root(features)
    lay = feature_layout(skel)
    d6 = features[..., lay.rot6d].reshape(features.shape[:-1] + (skel.n_joints - 1, 6))
    return torch.cat((r_rot[..., None, :], cont6d_to_quat(d6)), dim=-2), r_pos


def global_bone_rotations(local_quats: torch.Tensor, skel: Skeleton = HUMANML3D_22) -> torch.Tensor:
    """World rotation (..., J, 4) of each bone from local rotations (..., J, 4) (entry 0: the root's).

    Entry c rotates ``skel.raw_offsets[c]`` onto the direction of the bone parent(c) → c; exporters
    that need joint-based rotations (BVH) derive theirs from these.
    """
    rparents = rotation_parents(skel)
    glob = [local_quats[..., 0, :]]
    for c in range(1, skel.n_joints):
        glob.append(quat_mul(glob[rparents[c]], local_quats[..., c, :]))
    return torch.stack(glob, dim=-2)


# -------------------------------------------------------------------------------------- mirror


def _mirror_sign(like: torch.Tensor) -> torch.Tensor:
    return like.new_tensor([-1.0, 1.0, 1.0])


@numpy_compatible
def mirror_joints(joints: torch.Tensor, skel: Skeleton = HUMANML3D_22) -> torch.Tensor:
    """Mirror positions (..., J, 3) through the x = 0 plane: negate x and swap left/right joints."""
    if joints.shape[-2:] != (skel.n_joints, 3):
        raise MotionDataError(f"joints must be (..., {skel.n_joints}, 3), got {tuple(joints.shape)}")
    return joints[..., list(skel.mirror_map), :] * _mirror_sign(joints)


@numpy_compatible
def mirror_features(features: torch.Tensor, skel: Skeleton = HUMANML3D_22) -> torch.Tensor:
    """Mirror features (..., N, D) directly, without a round trip through positions.

    Equals ``joints_to_features(mirror_joints(x), canonical=False)`` for canonical positions x
    (a reflection M = diag(-1, 1, 1) maps each rotation R to M R M and negates the yaw rate).
    Bone lengths are mirrored too: when ``skel`` is not left/right symmetric (HumanML3D's target is
    not, by a few mm) this differs from HumanML3D's ``M*`` clips, which were mirrored *before*
    retargeting; the corpus builder should mirror positions when it has them.
    """
    _check_features(features, skel)
    lay = feature_layout(skel)
    j = skel.n_joints
    mm = list(skel.mirror_map)
    lead = features.shape[:-1]
    sign3 = _mirror_sign(features)
    ric = features[..., lay.ric].reshape(lead + (j - 1, 3))
    ric = ric[..., [m - 1 for m in mm[1:]], :] * sign3
    # M R M flips the sign of the entries (0,1), (0,2), (1,0), (2,0); 6D holds columns 0 and 1.
    d6 = features[..., lay.rot6d].reshape(lead + (j - 1, 6))
    d6 = d6[..., [m - 1 for m in mm[1:]], :] * features.new_tensor([1.0, -1.0, -1.0, -1.0, 1.0, 1.0])
    vel = features[..., lay.local_vel].reshape(lead + (j, 3))[..., mm, :] * sign3
    contacts = features[..., lay.contacts]
    return torch.cat(
        (-features[..., lay.root_rot_vel], features[..., 1:2] * -1.0, features[..., 2:4],
         ric.reshape(lead + (-1,)), d6.reshape(lead + (-1,)), vel.reshape(lead + (-1,)),
         contacts[..., 2:4], contacts[..., 0:2]),
        dim=-1,
    )


# --------------------------------------------------------------------------------- normaliser


class Normalizer:
    """Per-feature standardisation ``(x - mean) / std`` with HumanML3D's ``Mean.npy`` / ``Std.npy``.

    mean, std: (D,). Works on numpy arrays and torch tensors (any leading dims; tensors keep
    their device and dtype).
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray, eps: float = 1e-8) -> None:
        mean = np.asarray(mean, dtype=np.float32)
        std = np.asarray(std, dtype=np.float32)
        if mean.ndim != 1 or mean.shape != std.shape:
            raise MotionDataError(f"mean and std must both be (D,), got {mean.shape} and {std.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise MotionDataError("mean/std contain NaN or inf: recompute the statistics of the corpus")
        self.mean = mean
        # A constant feature has std 0; dividing by eps instead keeps it finite (it normalises to 0).
        self.std = np.maximum(std, eps).astype(np.float32)

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def _stats(self, x: Any) -> tuple[Any, Any]:
        if x.shape[-1] != self.dim:
            raise MotionDataError(f"features have {x.shape[-1]} columns, the normaliser {self.dim}")
        if isinstance(x, torch.Tensor):
            return (torch.as_tensor(self.mean, dtype=x.dtype, device=x.device),
                    torch.as_tensor(self.std, dtype=x.dtype, device=x.device))
        return self.mean, self.std

    def normalize(self, x: Any) -> Any:
        """Features (..., D) → standardised features (..., D)."""
        mean, std = self._stats(x)
        return (x - mean) / std

    def denormalize(self, x: Any) -> Any:
        """Standardised features (..., D) → features (..., D)."""
        mean, std = self._stats(x)
        return x * std + mean

    @classmethod
    def from_dir(cls, path: str | Any) -> Normalizer:
        """Load ``Mean.npy`` and ``Std.npy`` from a HumanML3D-layout directory."""
        from pathlib import Path

        d = Path(path)
        files = [d / "Mean.npy", d / "Std.npy"]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise MotionDataError(f"normaliser statistics not found: {', '.join(missing)}; "
                                  "build the corpus (it writes them) or point to a HumanML3D directory")
        try:
            mean, std = (np.load(f) for f in files)
        except (ValueError, OSError) as e:
            raise MotionDataError(f"cannot read the statistics in {d}: {e}; rebuild them") from e
        return cls(mean, std)

    def save(self, path: str | Any) -> None:
        """Write ``Mean.npy`` and ``Std.npy`` into directory ``path`` (atomically)."""
        from pathlib import Path

        from ikmo.motion_model.fileio import save_npy

        d = Path(path)
        save_npy(d / "Mean.npy", self.mean)
        save_npy(d / "Std.npy", self.std)

    @classmethod
    def fit(cls, features: np.ndarray, skel: Skeleton = HUMANML3D_22, feat_bias: float = 5.0) -> Normalizer:
        """HumanML3D's statistics of stacked features (N, D): per-column mean; std averaged within
        each block (one value per block), the contacts' divided by ``feat_bias`` (5)."""
        x = np.asarray(features, dtype=np.float64).reshape(-1, skel.feature_dim)
        if x.shape[0] < 2:
            raise MotionDataError("fitting a normaliser needs at least two feature rows")
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        lay = feature_layout(skel)
        for sl in (lay.root_rot_vel, lay.root_lin_vel, lay.root_y, lay.ric, lay.rot6d, lay.local_vel):
            std[sl] = std[sl].mean()
        # Dividing the contacts' std by feat_bias makes the binary labels weigh more once normalised.
        std[lay.contacts] = std[lay.contacts].mean() / feat_bias
        return cls(mean, std)


__all__ = [
    "FeatureLayout", "Normalizer", "bone_lengths", "canonicalize", "facing_quat", "feature_layout",
    "features_to_joints", "features_to_local_rotations", "features_to_root", "foot_contacts",
    "forward_kinematics", "gaussian_smooth_time", "global_bone_rotations", "inverse_kinematics",
    "joints_to_features", "mirror_features", "mirror_joints", "rotation_parents", "uniform_skeleton",
]


def features_to_pose_frames(features: torch.Tensor, n_rows: torch.Tensor | None = None) -> torch.Tensor:
    """R(·): raw features (..., L, 263) → global joints of all T = L + 1 pose frames (..., L + 1, 22, 3).

    HumanML3D's `recover_from_ric` returns one pose per feature row (frames 0..L-1); the last pose
    frame is recovered from the last row's joint velocities (`local_vel`, root frame → world by
    that row's root yaw). Differentiable.

    n_rows: (B,) valid rows of each motion when features is a padded batch (B, L, 263). Motion b's
    last pose frame, n_rows[b], then comes from its own last row n_rows[b] − 1 instead of from
    the padding after it; frames after it stay whatever the padding decodes to (masked by callers).
    """
    joints = features_to_joints(features)
    r_rot, _ = features_to_root(features)
    lay = feature_layout()
    L = features.shape[-2]
    if n_rows is None:
        vel = features[..., -1, lay.local_vel].reshape(features.shape[:-2] + (joints.shape[-2], 3))
        last = joints[..., -1, :, :] + quat_rotate(quat_conj(r_rot[..., -1, None, :]), vel)
        return torch.cat([joints, last[..., None, :, :]], dim=-3)
    if features.dim() != 3 or n_rows.shape != features.shape[:1]:
        raise ValueError(f"n_rows {tuple(n_rows.shape)} needs features (B, L, F), got {tuple(features.shape)}")
    b = torch.arange(features.shape[0], device=features.device)
    row = (n_rows.to(features.device).long() - 1).clamp(0, L - 1)
    vel = features[b, row][:, lay.local_vel].reshape(-1, joints.shape[-2], 3)
    last = joints[b, row] + quat_rotate(quat_conj(r_rot[b, row][:, None, :]), vel)  # (B, 22, 3)
    frames = torch.cat([joints, joints[:, -1:]], dim=1)  # (B, L + 1, 22, 3)
    at_end = (torch.arange(L + 1, device=features.device)[None] == (row + 1)[:, None])[..., None, None]
    return torch.where(at_end, last[:, None], frames)
