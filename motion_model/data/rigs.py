"""Map a BVH rig onto the 22 HumanML3D joints, and bring it to metres, y up.

A `RigMap` says, for each of the 22 target joints, where it sits in the source rig: on a source
joint, or at a fraction of the arc length along a chain of source joints (`Along`). `Along`
fills joints a rig lacks: SMPL's three spine joints between pelvis and neck, collars of rigs
without clavicles, foot tips and wrists from End Sites (named ``"<parent>_End"``).

Explicit maps exist for the three rigs of the shared data (Bandai Namco, CMU cgspeed Daz-style,
ReActIdle); `name_based_map` handles SMPL joint names and Mixamo-like names
(``"mixamorig:LeftUpLeg"``, ``"LeftForeArm"``, ``"l_hip"``, ``"thigh.L"``, ``"lShin"``).
Only joint *directions* survive retargeting to the target skeleton (representation.canonicalize
re-sets bone lengths), so interpolated joints only need to point the right way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ikmo.motion_model.data.rig_match import SPINE_T, Along, JointSource, match_rig, split_side
from ikmo.motion_model.errors import MotionDataError, RigMappingError
from ikmo.motion_model.representation.skeleton import HUMANML3D_22

__all__ = ["RIGS", "Along", "JointSource", "RigMap", "bvh_to_joints", "name_based_map", "resolve_rig", "split_side"]

log = logging.getLogger(__name__)

_SPINE_T = SPINE_T


@dataclass(frozen=True)
class RigMap:
    """Where each of the 22 HumanML3D joints (in `HUMANML3D_22.joint_names` order) is in a rig."""

    name: str
    targets: tuple[JointSource, ...]
    guessed: tuple[str, ...] = ()  # target joints placed from the skeleton, not from names
    family: str = ""  # the naming family ("Mixamo", "Unreal mannequin", ...)

    def __post_init__(self) -> None:
        if len(self.targets) != HUMANML3D_22.n_joints:
            raise ValueError(f"rig map {self.name!r} needs {HUMANML3D_22.n_joints} targets")

    def source_names(self) -> set[str]:
        out: set[str] = set()
        for t in self.targets:
            out.update(t.chain if isinstance(t, Along) else (t,))
        return out

    def missing(self, names: Sequence[str]) -> list[str]:
        """Source joints this map needs that `names` lacks."""
        have = set(names)
        return sorted(self.source_names() - have)

    def apply(self, positions: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """Pick/interpolate the 22 joints.

        Args:
            positions: (T, N, 3) world positions of the source joints (and End Sites).
            names: (N,) their names.
        Returns:
            (T, 22, 3) float64, same units and axes as `positions`.
        Raises:
            RigMappingError: a source joint the map needs is absent.
        """
        index = {n: i for i, n in enumerate(names)}
        lacking = self.missing(names)
        if lacking:
            raise RigMappingError(f"rig {self.name!r}: the file lacks joints {lacking}")
        out = np.empty((positions.shape[0], len(self.targets), 3), dtype=np.float64)
        for k, t in enumerate(self.targets):
            if isinstance(t, Along):
                out[:, k] = along_points(positions[:, [index[n] for n in t.chain]], t.t)
            else:
                out[:, k] = positions[:, index[t]]
        return out


def along_points(chain: np.ndarray, t: float) -> np.ndarray:
    """(T, K, 3) polyline per frame → (T, 3) point at arc-length fraction t."""
    if chain.shape[1] == 1:
        return chain[:, 0]
    seg = np.linalg.norm(np.diff(chain, axis=1), axis=-1)  # (T, K-1)
    cum = np.concatenate([np.zeros((chain.shape[0], 1)), np.cumsum(seg, axis=1)], axis=1)
    s = t * cum[:, -1]
    idx = np.clip((cum[:, 1:-1] < s[:, None]).sum(axis=1), 0, chain.shape[1] - 2)
    rows = np.arange(chain.shape[0])
    seg_len = seg[rows, idx]
    frac = np.where(seg_len > 1e-12, (s - cum[rows, idx]) / np.maximum(seg_len, 1e-12), 0.0)
    a, b = chain[rows, idx], chain[rows, idx + 1]
    return a + frac[:, None] * (b - a)


def _make(name: str, m: dict[str, JointSource]) -> RigMap:
    return RigMap(name, tuple(m[j] for j in HUMANML3D_22.joint_names))


def _spine(chain: tuple[str, ...]) -> dict[str, JointSource]:
    return {f"spine{i + 1}": Along(chain, t) for i, t in enumerate(_SPINE_T)}


# Bandai Namco Research Motion: Y up, centimetres; Shoulder_* is the clavicle start, ~5 cm
# lateral of the spine like SMPL's collar; Toes_* sits at the ball of the foot.
BANDAI = _make("bandai", {
    "pelvis": "Hips", "left_hip": "UpperLeg_L", "right_hip": "UpperLeg_R",
    **_spine(("Hips", "Spine", "Chest", "Neck")),
    "left_knee": "LowerLeg_L", "right_knee": "LowerLeg_R", "left_ankle": "Foot_L", "right_ankle": "Foot_R",
    "left_foot": "Toes_L", "right_foot": "Toes_R", "neck": "Neck", "head": "Head",
    "left_collar": "Shoulder_L", "right_collar": "Shoulder_R", "left_shoulder": "UpperArm_L",
    "right_shoulder": "UpperArm_R", "left_elbow": "LowerArm_L", "right_elbow": "LowerArm_R",
    "left_wrist": "Hand_L", "right_wrist": "Hand_R",
})  # fmt: skip

# CMU in cgspeed's Daz-friendly rig: lButtock is a hip-offset bone, lThigh the hip joint; no toe
# joint, so the foot tip is the End Site of lFoot.
CMU_DAZ = _make("cmu_daz", {
    "pelvis": "hip", "left_hip": "lThigh", "right_hip": "rThigh",
    **_spine(("hip", "abdomen", "chest", "neck")),
    "left_knee": "lShin", "right_knee": "rShin", "left_ankle": "lFoot", "right_ankle": "rFoot",
    "left_foot": "lFoot_End", "right_foot": "rFoot_End", "neck": "neck", "head": "head",
    "left_collar": "lCollar", "right_collar": "rCollar", "left_shoulder": "lShldr",
    "right_shoulder": "rShldr", "left_elbow": "lForeArm", "right_elbow": "rForeArm",
    "left_wrist": "lHand", "right_wrist": "rHand",
})  # fmt: skip

# CMU in the original ASF-derived rig (lhipjoint/lfemur/ltibia..., some files of the subset):
# lhipjoint is the pelvis-to-hip offset bone, lfemur the hip joint; lclavicle starts at the neck base.
CMU_ASF = _make("cmu_asf", {
    "pelvis": "hip", "left_hip": "lfemur", "right_hip": "rfemur",
    **_spine(("hip", "lowerback", "upperback", "thorax", "lowerneck")),
    "left_knee": "ltibia", "right_knee": "rtibia", "left_ankle": "lfoot", "right_ankle": "rfoot",
    "left_foot": "ltoes", "right_foot": "rtoes", "neck": "lowerneck", "head": "head",
    "left_collar": Along(("lclavicle", "lhumerus"), 0.35), "right_collar": Along(("rclavicle", "rhumerus"), 0.35),
    "left_shoulder": "lhumerus", "right_shoulder": "rhumerus", "left_elbow": "lradius",
    "right_elbow": "rradius", "left_wrist": "lwrist", "right_wrist": "rwrist",
})  # fmt: skip

# ReActIdle (Blender-style, metres, no hands): shoulder.* starts at the neck base, so the collar
# is placed a third of the way out to the shoulder; wrists and foot tips are End Sites.
REACTIDLE = _make("reactidle", {
    "pelvis": "pelvis", "left_hip": "thigh.L", "right_hip": "thigh.R",
    **_spine(("pelvis", "spine", "spine.001", "neck")),
    "left_knee": "shin.L", "right_knee": "shin.R", "left_ankle": "foot.L", "right_ankle": "foot.R",
    "left_foot": "foot.L_End", "right_foot": "foot.R_End", "neck": "neck", "head": "face",
    "left_collar": Along(("shoulder.L", "upper_arm.L"), 0.35),
    "right_collar": Along(("shoulder.R", "upper_arm.R"), 0.35),
    "left_shoulder": "upper_arm.L", "right_shoulder": "upper_arm.R", "left_elbow": "forearm.L",
    "right_elbow": "forearm.R", "left_wrist": "forearm.L_End", "right_wrist": "forearm.R_End",
})  # fmt: skip

RIGS: dict[str, RigMap] = {r.name: r for r in (BANDAI, CMU_DAZ, CMU_ASF, REACTIDLE)}


# ----------------------------------------------------------------------------- automatic mapping

_FAMILIES = {"bandai": "Bandai Namco", "cmu_daz": "CMU / Daz", "cmu_asf": "CMU ASF", "reactidle": "Blender metarig"}


def name_based_map(names: Sequence[str], parents: Sequence[int] | None = None, rest: np.ndarray | None = None,
                   n_joints: int | None = None) -> RigMap:
    """Build a RigMap from joint names (any family of `rig_match`), the skeleton filling the gaps.

    Args:
        names: source joint names, End Sites included (last) as ``"<parent>_End"``.
        parents: (len(names),) parent indices if known; used to find the spine joints between
            pelvis and neck and, with `rest`, to place joints the names do not tell.
        rest: (len(names), 3) rest-pose world positions (file units).
        n_joints: how many of `names` are joints rather than End Sites.
    Raises:
        RigMappingError: listing the target joints that could not be found.
    """
    m = match_rig(names, parents, rest, n_joints)
    if m.missing:
        real = [n for n in names if not n.endswith("_End")]
        raise RigMappingError(
            f"cannot map this rig onto the 22 HumanML3D joints: no source joint for {list(m.missing)}. "
            f"The file's joints are {real}. Rename the joints to SMPL or Mixamo names, or add an explicit "
            "RigMap in ikmo.motion_model.data.rigs.",
            missing=m.missing, family=m.family,
        )
    name = "smpl_names" if m.family == "SMPL" else "skeleton" if m.guessed else "name_based"
    return RigMap(name, tuple(m.targets[j] for j in HUMANML3D_22.joint_names), m.guessed, m.family)


def resolve_rig(names: Sequence[str], parents: Sequence[int] | None = None, rig: str | None = None,
                rest: np.ndarray | None = None, n_joints: int | None = None) -> RigMap:
    """The RigMap for a file: the named one, else the first explicit rig it fits, else by names
    and skeleton (`name_based_map`; `rest` and `n_joints` as there).

    Raises:
        RigMappingError: an unknown rig name, a named rig that does not fit, or no mapping found.
    """
    if rig is not None:
        if rig not in RIGS:
            raise RigMappingError(f"unknown rig {rig!r}; known rigs: {sorted(RIGS)} (or leave it out to map by names)")
        lacking = RIGS[rig].missing(names)
        if lacking:
            raise RigMappingError(f"the file does not fit rig {rig!r}: it lacks joints {lacking}")
        return replace(RIGS[rig], family=_FAMILIES[rig])
    for r in RIGS.values():
        if not r.missing(names):
            return replace(r, family=_FAMILIES[r.name])
    return name_based_map(names, parents, rest, n_joints)


# ----------------------------------------------------------------------------- units and axes

# "cmu_asf": the CMU ASF length unit (ASF `units length 0.45`: 1/0.45 inch), kept by BVH conversions.
UNITS: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu_asf": 0.0254 / 0.45}
# Hip-to-ankle length of an adult, metres: what the unit guess aims for.
_TYPICAL_LEG_M = 0.82


def guess_unit(joints: np.ndarray) -> str:
    """The unit of (T, 22, 3) mapped joints, from the median hip→knee→ankle length."""
    leg = 0.0
    for hip, knee, ankle in ((1, 4, 7), (2, 5, 8)):
        leg += np.median(np.linalg.norm(joints[:, hip] - joints[:, knee], axis=-1)
                         + np.linalg.norm(joints[:, knee] - joints[:, ankle], axis=-1))
    leg /= 2
    if not np.isfinite(leg) or leg <= 0:
        raise MotionDataError("cannot tell the unit: the legs have zero length")
    return min(UNITS, key=lambda u: abs(np.log(leg * UNITS[u] / _TYPICAL_LEG_M)))


def up_rotation(joints: np.ndarray) -> np.ndarray:
    """(3, 3) rotation that turns the body's up axis (ankles → neck, median over frames, snapped to
    the nearest coordinate axis) into +Y."""
    up = np.median(joints[:, 12] - 0.5 * (joints[:, 7] + joints[:, 8]), axis=0)
    axis = int(np.argmax(np.abs(up)))
    src = np.zeros(3)
    src[axis] = np.sign(up[axis]) or 1.0
    y = np.array([0.0, 1.0, 0.0])
    if np.allclose(src, y):
        return np.eye(3)
    if np.allclose(src, -y):
        return np.diag([1.0, -1.0, -1.0])  # 180° about x
    k = np.cross(src, y)  # unit: src ⟂ y
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + K + K @ K  # Rodrigues for a 90° turn


def to_metres_y_up(joints: np.ndarray, unit: str | None = None) -> tuple[np.ndarray, str]:
    """Scale (T, 22, 3) mapped joints to metres and rotate them to y up.

    Returns:
        ((T, 22, 3) float64 metres y up, the unit used — `unit` or the guessed one).
    """
    if unit is None:
        unit = guess_unit(joints)
    elif unit not in UNITS:
        raise MotionDataError(f"unknown unit {unit!r}; use one of {sorted(UNITS)}")
    out = joints * UNITS[unit]
    return out @ up_rotation(out).T, unit


# ----------------------------------------------------------------------------- import and resample


def resample(positions: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """Linear interpolation of (T, ...) positions from `src_fps` to `dst_fps`.

    Output frame k is at time k / dst_fps; the last one is the latest that is ≤ the clip's end,
    so (T − 1) / src_fps seconds become floor((T − 1) · dst_fps / src_fps) + 1 frames.
    """
    if src_fps <= 0 or dst_fps <= 0:
        raise MotionDataError(f"frame rates must be positive, got {src_fps} → {dst_fps}")
    T = positions.shape[0]
    # The epsilon guards against float error turning an exact multiple into one frame less.
    n = int(np.floor((T - 1) * dst_fps / src_fps + 1e-6)) + 1
    t = np.arange(n) * (src_fps / dst_fps)
    i0 = np.minimum(np.floor(t).astype(np.int64), T - 1)
    i1 = np.minimum(i0 + 1, T - 1)
    w = (t - i0).reshape((n,) + (1,) * (positions.ndim - 1))
    return positions[i0] * (1.0 - w) + positions[i1] * w


def clean_fps(fps: float) -> float:
    """Snap a header rate like 119.99995 (a rounded Frame Time) to the integer it stands for."""
    r = round(fps)
    return float(r) if abs(fps - r) < 1e-3 * fps else fps


def bvh_to_joints(path: str, rig: str | None = None, unit: str | None = None, src_fps: float | None = None,
                  dst_fps: float = 20.0, src_fps_if_header: float | None = None, trim_start_s: float = 0.0,
                  ) -> tuple[np.ndarray, dict[str, object]]:
    """Import a BVH file as the 22 HumanML3D joints: map the rig, metres, y up, resampled.

    Args:
        path: the BVH file.
        rig: an explicit rig name from `RIGS`; None picks one (or maps by joint names).
        unit: a key of `UNITS` ("m", "cm", "mm", "inch", "cmu_asf"); None guesses it from the leg length.
        src_fps: the true capture rate when the header is wrong (CMU); None trusts the header.
        src_fps_if_header: apply `src_fps` only when the header claims this rate (CMU's cgspeed
            files claim 120 fps for trials captured at 60; files already resampled are right).
        trim_start_s: seconds dropped at the start (CMU's cgspeed files blend in from a T-pose
            over their first ~8 frames at 120 fps).
        dst_fps: output rate (HumanML3D: 20).
    Returns:
        (joints (T', 22, 3) float64 metres y up — not yet canonicalised (facing, floor and origin
        are the job of representation.canonicalize), info {"rig", "unit", "src_fps", "src_frames"}).
    Raises:
        InputFileError, RigMappingError, MotionDataError (each naming the file).
    """
    from ikmo.motion_model.data.bvh import bvh_rest_positions, bvh_world_positions, read_bvh

    motion = read_bvh(path)
    names = motion.names + motion.end_site_names
    parents = list(motion.parents) + [p for p, _ in motion.end_sites]
    label = rig_label(motion.names)
    try:
        rmap = resolve_rig(names, parents, rig, bvh_rest_positions(motion), motion.n_joints)
        joints = rmap.apply(bvh_world_positions(motion, end_sites=True), names)
        joints, unit_used = to_metres_y_up(joints, unit)
    except RigMappingError as e:
        raise RigMappingError(f"{path}: {e}", missing=e.missing, family=e.family, rig=label) from e
    except MotionDataError as e:
        raise MotionDataError(f"{path}: {e}") from e
    fps = clean_fps(motion.fps)
    if src_fps and (src_fps_if_header is None or abs(fps - src_fps_if_header) < 0.5):
        fps = float(src_fps)
    skip = int(round(trim_start_s * fps))
    if skip and joints.shape[0] > skip:
        joints = joints[skip:]
    out = resample(joints, fps, dst_fps)
    if not np.isfinite(out).all():
        raise MotionDataError(f"{path}: the imported joints contain NaN or inf")
    return out, {"rig": rmap.name, "unit": unit_used, "src_fps": fps, "src_frames": motion.n_frames,
                 "family": rmap.family, "guessed": list(rmap.guessed), "rig_label": label}


def rig_label(joint_names: Sequence[str]) -> str:
    """A short name for a rig, the same for every clip on it: ``"Mixamo rig 'Hips', 52 joints"``."""
    from ikmo.motion_model.data.rig_match import rig_family

    family = rig_family(joint_names)
    kind = "unnamed" if family == "unknown" else family
    return f"{kind} rig {joint_names[0]!r}, {len(joint_names)} joints"


@dataclass(frozen=True)
class RigReport:
    """What `inspect_bvh` found in a file.

    Attributes:
        rig: the RigMap used (its name, family and guessed joints).
        rows: (target joint, source description, "named" | "guessed" | "interpolated") × 22.
        unit: the length unit used; fps: the header's frame rate; frames: frames in the file.
        names: (N,) source joints and End Sites; parents: (N,) their parents.
        rest: (N, 3) rest pose of all source joints, metres, y up; pose: (N, 3) frame `frame`.
        rest22, pose22: (22, 3) the mapped joints of the rest pose and of frame `frame`, metres, y up.
        frame: the frame drawn.
    """

    rig: RigMap
    rows: tuple[tuple[str, str, str], ...]
    unit: str
    fps: float
    frames: int
    names: tuple[str, ...]
    parents: tuple[int, ...]
    rest: np.ndarray
    pose: np.ndarray
    rest22: np.ndarray
    pose22: np.ndarray
    frame: int


def inspect_bvh(path: str, frame: int | None = None, rig: str | None = None, unit: str | None = None) -> RigReport:
    """Map a BVH file's rig and report how (for `ikmo data inspect`); `frame` defaults to the middle.

    Raises:
        InputFileError, RigMappingError (naming the file and the joints it lacks), MotionDataError.
    """
    from ikmo.motion_model.data.bvh import bvh_rest_positions, bvh_world_positions, read_bvh

    motion = read_bvh(path)
    names = motion.names + motion.end_site_names
    parents = tuple(motion.parents) + tuple(p for p, _ in motion.end_sites)
    rest = bvh_rest_positions(motion)
    try:
        rmap = resolve_rig(names, parents, rig, rest, motion.n_joints)
    except RigMappingError as e:
        raise RigMappingError(f"{path}: {e}", missing=e.missing, family=e.family, rig=rig_label(motion.names)) from e
    k = motion.n_frames // 2 if frame is None else frame
    if not 0 <= k < motion.n_frames:
        raise MotionDataError(f"{path}: frame {k} is outside the file's {motion.n_frames} frames")
    pose = bvh_world_positions(motion.select_frames(np.array([k])), end_sites=True)[0]
    both = np.stack([rest, pose])  # (2, N, 3)
    mapped = rmap.apply(both, names)
    used = guess_unit(mapped) if unit is None else unit
    if used not in UNITS:
        raise MotionDataError(f"unknown unit {used!r}; use one of {sorted(UNITS)}")
    R = up_rotation(mapped[:1] * UNITS[used])
    both = both * UNITS[used] @ R.T
    mapped = mapped * UNITS[used] @ R.T
    rows = []
    for target, src in zip(HUMANML3D_22.joint_names, rmap.targets, strict=True):
        if isinstance(src, Along):
            rows.append((target, f"{src.t:.2f} along {' → '.join(src.chain)}", "interpolated"))
        else:
            rows.append((target, src, "guessed" if target in rmap.guessed else "named"))
    return RigReport(rmap, tuple(rows), used, clean_fps(motion.fps), motion.n_frames, tuple(names), parents,
                     both[0], both[1], mapped[0], mapped[1], k)
