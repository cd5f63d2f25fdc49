"""Skeleton definitions as data: one `Skeleton` type, one instance per dataset convention.

HumanML3D (22 SMPL joints) and KIT-ML (21 joints) differ only in these tables; every algorithm
(forward/inverse kinematics, features, mirroring) takes a `Skeleton` and never branches on its name.
Conventions (docs/architecture.md): metres, y up, the character faces +Z at frame 0, left side is +X.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def children_lists(parents: Sequence[int]) -> list[list[int]]:
    """Each joint's children, in joint order, from a parents list (−1 for a root)."""
    out: list[list[int]] = [[] for _ in parents]
    for c, p in enumerate(parents):
        if p >= 0:
            out[p].append(c)
    return out


@dataclass(frozen=True)
class Skeleton:
    """A kinematic tree with a target rest shape.

    Attributes:
        name: short identifier, e.g. ``"humanml3d"``.
        joint_names: (J,) joint names in index order.
        parents: (J,) parent index of each joint, -1 for the root (joint 0).
        raw_offsets: (J, 3) unit direction of each bone in the rest pose (root row is zero).
        bone_lengths: (J,) length in metres of the bone ending at each joint (root is 0).
        feet_left / feet_right: (ankle, toe) joint indices used for foot contacts.
        face_joints: (r_hip, l_hip, r_shoulder, l_shoulder), used to find the facing direction.
        leg_joints: (knee, ankle) of one leg, used to rescale the root height when retargeting.
        mirror_map: (J,) index of each joint's left/right counterpart (itself on the midline).
    """

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    raw_offsets: np.ndarray
    bone_lengths: np.ndarray
    feet_left: tuple[int, int]
    feet_right: tuple[int, int]
    face_joints: tuple[int, int, int, int]
    leg_joints: tuple[int, int]
    mirror_map: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if len(self.parents) != n or self.raw_offsets.shape != (n, 3) or self.bone_lengths.shape != (n,):
            raise ValueError(f"skeleton {self.name!r}: tables disagree on the joint count {n}")
        if any(p >= i for i, p in enumerate(self.parents)):
            raise ValueError(f"skeleton {self.name!r}: parents must precede children")
        if len(self.mirror_map) != n:
            raise ValueError(f"skeleton {self.name!r}: mirror_map needs {n} entries")

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    @property
    def feature_dim(self) -> int:
        """Per-frame feature size of the HumanML3D representation: 263 for 22 joints, 251 for 21."""
        j = self.n_joints
        return 4 + (j - 1) * 3 + (j - 1) * 6 + j * 3 + 4

    def offsets(self) -> np.ndarray:
        """(J, 3) rest-pose bone vectors in metres: raw direction × target length."""
        return self.raw_offsets * self.bone_lengths[:, None]

    def children(self, joint: int) -> list[int]:
        return [i for i, p in enumerate(self.parents) if p == joint]

    def index(self, name: str) -> int:
        return self.joint_names.index(name)


def _mirror_from_names(names: tuple[str, ...], left: str, right: str) -> tuple[int, ...]:
    out = []
    for n in names:
        if left in n:
            out.append(names.index(n.replace(left, right)))
        elif right in n:
            out.append(names.index(n.replace(right, left)))
        else:
            out.append(names.index(n))
    return tuple(out)


_SMPL22_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
)  # fmt: skip

HUMANML3D_22 = Skeleton(
    name="humanml3d",
    joint_names=_SMPL22_NAMES,
    parents=(-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19),
    raw_offsets=np.array(
        [[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, -1, 0],
         [0, -1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1],
         [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0]],
        dtype=np.float64,
    ),  # fmt: skip
    # Target skeleton of HumanML3D (bone ending at joint i), metres.
    bone_lengths=np.array(
        [0.0, 0.1031, 0.1099, 0.1316, 0.3936, 0.3902, 0.1432, 0.4324, 0.4256, 0.0574, 0.1434, 0.1494,
         0.2194, 0.1375, 0.1434, 0.1030, 0.1316, 0.1230, 0.2568, 0.2631, 0.2660, 0.2699],
        dtype=np.float64,
    ),  # fmt: skip
    feet_left=(7, 10),
    feet_right=(8, 11),
    face_joints=(2, 1, 17, 16),
    leg_joints=(5, 8),
    mirror_map=_mirror_from_names(_SMPL22_NAMES, "left_", "right_"),
)

_KIT21_NAMES = (
    "root", "bp", "bt", "bln", "head", "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle",
    "right_heel", "right_toe", "left_hip", "left_knee", "left_ankle", "left_heel", "left_toe",
)  # fmt: skip

# KIT-ML as HumanML3D's paramUtil draws it. KIT-ML is stored in millimetres and retargeted to a
# reference clip of the dataset itself; these lengths are average adult proportions in metres and
# only matter when raw KIT positions are re-processed here (loading KIT-ML features does not use them).
KIT_21 = Skeleton(
    name="kit",
    joint_names=_KIT21_NAMES,
    parents=(-1, 0, 1, 2, 3, 3, 5, 6, 3, 8, 9, 0, 11, 12, 13, 14, 0, 16, 17, 18, 19),
    raw_offsets=np.array(
        [[0, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0], [0, -1, 0], [0, -1, 0],
         [-1, 0, 0], [0, -1, 0], [0, -1, 0], [1, 0, 0], [0, -1, 0], [0, -1, 0], [0, 0, 1], [0, 0, 1],
         [-1, 0, 0], [0, -1, 0], [0, -1, 0], [0, 0, 1], [0, 0, 1]],
        dtype=np.float64,
    ),  # fmt: skip
    bone_lengths=np.array(
        [0.0, 0.12, 0.14, 0.22, 0.20, 0.19, 0.28, 0.26, 0.19, 0.28, 0.26, 0.09, 0.42, 0.42, 0.06,
         0.14, 0.09, 0.42, 0.42, 0.06, 0.14],
        dtype=np.float64,
    ),  # fmt: skip
    feet_left=(19, 20),
    feet_right=(14, 15),
    face_joints=(11, 16, 5, 8),
    leg_joints=(17, 18),
    mirror_map=_mirror_from_names(_KIT21_NAMES, "left_", "right_"),
)

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (HUMANML3D_22, KIT_21)}

# Frames per second and the longest clip of the HumanML3D convention.
FPS = 20
MAX_FRAMES = 196
