"""BlazePose landmarks → the 22 HumanML3D joints → an SMPL body pose (global_orient + 21×3 body_pose).

1. `landmarks_to_joints`: map BlazePose's 33 world landmarks onto the 22 joints. Limb joints come
   straight from landmarks; the pelvis and hips are placed from the hip landmarks with the offsets
   the rest skeleton implies (in a torso frame); spine3, neck and collars from the shoulders likewise;
   spine1/2 between pelvis and spine3; the foot joint between heel and foot index; the head joint
   from ears and nose. Each joint gets a confidence (landmark visibility) and a mask: a joint whose
   landmarks are out of the image or unseen is not invented (an upper-body photo has no legs).
   A learned linear correction (`LandmarkRegressor`, trained on rendered train-split poses by
   scripts/make_landmark_regressor.py) then removes most of BlazePose's view-dependent depth and
   pitch errors from those joints (pose benchmark: MPJPE 80 → 38 mm).
2. `fit_pose`: fit the body model's rest skeleton (bone lengths fixed; for the mannequin these are the
   HumanML3D target lengths) to those points. An analytic solution comes first: Procrustes frames for
   pelvis and chest, hinge-aware frames for shoulders and hips (the elbow/knee bend plane fixes the
   upper limb's twist, so elbows and knees bend about their own hinge axis, forwards only), swings
   elsewhere. A knee seen bending backwards is BlazePose's depth ambiguity: the shin's depth is
   mirrored (front/back flip) when that makes the bend anatomical, otherwise the leg is straightened.
   Then a short torch refinement (Adam on 6D rotations) minimises the confidence-weighted joint error
   with hinge and joint-limit penalties and a pose prior on the spine, neck and collars.
3. The result is returned in the canonical frame: root-relative, yaw removed so the body faces +Z
   (HumanML3D's facing from hips and shoulders), +X left, y up.

All rotations are SMPL's: local joint rotations relative to the T-pose (see body_model).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ikmo.motion_model.constraints import KeyframePose
from ikmo.motion_model.errors import PoseEstimationError
from ikmo.motion_model.representation.rotations import axis_angle_to_matrix, cont6d_to_matrix, matrix_to_axis_angle
from ikmo.motion_model.representation.skeleton import HUMANML3D_22

from .body_model import BodyModel, load_body_model
from .pose_estimation import LM, LandmarkDetector, Landmarks, check_image_array, load_image
from .toolbox import FitResult, PhotoReading

log = logging.getLogger(__name__)

N = HUMANML3D_22.n_joints  # 22
PARENTS = np.array(HUMANML3D_22.parents)
MIN_VISIBILITY = 0.5

# Hinges, in the T-pose frame of the joint: elbows flex about ∓y (forearm swings forward), knees
# about +x (shin swings backward). (joint, hinge axis, parent whose twist the bend plane fixes)
HINGES = {18: (np.array([0.0, -1.0, 0.0]), 16), 19: (np.array([0.0, 1.0, 0.0]), 17),
          4: (np.array([1.0, 0.0, 0.0]), 1), 5: (np.array([1.0, 0.0, 0.0]), 2)}


# --------------------------------------------------------------------------- rotation helpers


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def _frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Orthonormal frame (3×3, columns) with first axis a, second the part of b orthogonal to a."""
    e1 = _unit(a)
    e2 = _unit(b - e1 * (b @ e1))
    return np.stack([e1, e2, np.cross(e1, e2)], axis=1)


def align_two(a_src: np.ndarray, b_src: np.ndarray, a_dst: np.ndarray, b_dst: np.ndarray) -> np.ndarray:
    """Rotation taking direction a_src exactly onto a_dst and b_src as close as possible onto b_dst."""
    return _frame(a_dst, b_dst) @ _frame(a_src, b_src).T


def swing(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Smallest rotation taking direction src onto dst (3×3)."""
    a, b = _unit(src), _unit(dst)
    v = np.cross(a, b)
    c = float(a @ b)
    if c < -1 + 1e-8:  # opposite: any perpendicular axis
        axis = _unit(np.cross(a, [1.0, 0, 0]) if abs(a[0]) < 0.9 else np.cross(a, [0, 1.0, 0]))
        return 2 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def fk_numpy(local: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Forward kinematics: local rotations (22, 3, 3), rest joints (22, 3) → joints (22, 3), pelvis at 0."""
    G = np.zeros_like(local)
    P = np.zeros_like(rest)
    for i in range(N):
        p = PARENTS[i]
        if p < 0:
            G[i] = local[i]
        else:
            G[i] = G[p] @ local[i]
            P[i] = P[p] + G[p] @ (rest[i] - rest[p])
    return P


def fk_torch(local: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """Batched FK: local (B, 22, 3, 3), rest (22, 3) → joints (B, 22, 3), pelvis at the origin."""
    offsets = rest - rest[PARENTS.clip(0)]
    G: list[torch.Tensor] = [local[:, 0]]
    P: list[torch.Tensor] = [torch.zeros(local.shape[0], 3, dtype=local.dtype)]
    for i in range(1, N):
        p = int(PARENTS[i])
        G.append(G[p] @ local[:, i])
        P.append(P[p] + G[p] @ offsets[i])
    return torch.stack(P, 1)


# --------------------------------------------------------------------------- landmarks → joints


@dataclass
class JointTargets:
    """22 target joints from an image, before fitting.

    points: (22, 3) float64 metres, y-up camera frame (x right, y up, z to the viewer), pelvis at 0.
    confidence: (22,) in [0, 1]; mask: (22,) bool (False = not seen, not constrained).
    """

    points: np.ndarray
    confidence: np.ndarray
    mask: np.ndarray
    notes: list[str] = field(default_factory=list)
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))  # pelvis in the landmark frame
    scale: float = 1.0  # model size / BlazePose size applied to the landmarks


def _torso_frame(left: np.ndarray, right: np.ndarray, up_hint: np.ndarray) -> np.ndarray:
    """Columns: lateral (towards the left side), up, forward — from a left/right pair and an up hint."""
    lat = _unit(left - right)
    up = _unit(up_hint - lat * (up_hint @ lat))
    return np.stack([lat, up, np.cross(lat, up)], axis=1)


# (landmark a, landmark b, joint a, joint b): segments whose lengths compare body sizes.
_SIZE_SEGMENTS = (
    ("left_shoulder", "left_elbow", 16, 18), ("right_shoulder", "right_elbow", 17, 19),
    ("left_elbow", "left_wrist", 18, 20), ("right_elbow", "right_wrist", 19, 21),
    ("left_hip", "left_knee", 1, 4), ("right_hip", "right_knee", 2, 5),
    ("left_knee", "left_ankle", 4, 7), ("right_knee", "right_ankle", 5, 8),
    ("left_shoulder", "right_shoulder", 16, 17),
)  # fmt: skip


def _size_ratio(W: np.ndarray, seen: np.ndarray, rest: np.ndarray) -> float:
    """Model size / landmark size from the visible limb segments (1 when none is visible)."""
    num = den = 0.0
    for a, b, ja, jb in _SIZE_SEGMENTS:
        if seen[LM[a]] and seen[LM[b]]:
            num += float(np.linalg.norm(rest[ja] - rest[jb]))
            den += float(np.linalg.norm(W[LM[a]] - W[LM[b]]))
    return float(np.clip(num / den, 0.5, 2.0)) if den > 0 else 1.0


# Mean offset (torso frame: lateral, up, forward; metres) of the joints read from BlazePose
# landmarks from the true joints, measured by `ikmo.eval.bench_pose.calibrate_landmark_bias` on 24
# renderings of standing poses with random arms and views (seed 123; not the benchmark's poses) and
# symmetrised. BlazePose's torso is shorter and leans forward relative to SMPL joints; its ankles
# sit behind SMPL's ankle joints. Subtracted in `landmarks_to_joints`.
_UPPER = (0.0, -0.046, 0.023)
LANDMARK_BIAS: dict[int, tuple[float, float, float]] = {
    **dict.fromkeys((9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21), _UPPER),
    7: (0.0, 0.038, -0.083), 8: (0.0, 0.038, -0.083), 10: (0.0, 0.02, -0.10), 11: (0.0, 0.02, -0.10),
}

_LIMB_CHAINS = ((16, 18), (18, 20), (17, 19), (19, 21), (1, 4), (4, 7), (2, 5), (5, 8), (7, 10), (8, 11))


_THIGH_BACK_SIN = math.sin(math.radians(15))


def _fix_limb_depth(P: np.ndarray, mask: np.ndarray, rest: np.ndarray, forward: np.ndarray | None = None,
                    lift: bool = False) -> None:
    """Depth corrections of limb bones (in place; distal joints move with their bone).

    Front/back prior: a thigh can extend backwards only ~20°; one reading more than 15° behind the
    body (`forward`: the torso's forward axis) is taken as BlazePose's depth flip and mirrored in depth.

    lift=True also re-derives every limb bone's depth from its image-plane length and the known bone
    length, |Δz| = sqrt(L² − d²) (Taylor, CVPR 2000), keeping the sign. Off by default: BlazePose's
    limb proportions differ from the model's, and on the pose benchmark (corpus test split, 20 poses
    × 3 views) lifting left MPJPE unchanged (79 mm) and worsened PA-MPJPE (57 → 60 mm).
    """
    for a, b in _LIMB_CHAINS:
        if not (mask[a] and mask[b]):
            continue
        L = float(np.linalg.norm(rest[b] - rest[a]))
        d = P[b] - P[a]
        dxy = float(np.linalg.norm(d[:2]))
        if lift and dxy < L:
            new = np.array([d[0], d[1], math.copysign(math.sqrt(L * L - dxy * dxy), d[2])])
        elif lift:
            new = d * (L / max(float(np.linalg.norm(d)), 1e-9))
        else:
            new = d.copy()
        if b in (4, 5) and forward is not None:
            flipped = new * np.array([1.0, 1.0, -1.0])
            n = max(float(np.linalg.norm(new)), 1e-9)
            if new @ forward < -_THIGH_BACK_SIN * n and flipped @ forward > new @ forward:
                new = flipped
        shift = (P[a] + new) - P[b]
        for j in _descendants(b):
            P[j] += shift


def _descendants(j: int) -> list[int]:
    out = [j]
    for i in range(j + 1, N):
        if PARENTS[i] in out:
            out.append(i)
    return out


# --------------------------------------------------------------------------- learned correction

REGRESSOR_PATH = Path(__file__).resolve().parent / "assets" / "landmark_regressor.npz"
# Landmarks the learned correction reads (nose, ears, shoulders … foot indices).
REG_LANDMARKS = ("nose", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                 "left_wrist", "right_wrist", "left_index", "right_index", "left_hip", "right_hip", "left_knee",
                 "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel", "left_foot_index",
                 "right_foot_index")  # fmt: skip
_REG_IDX = np.array([LM[n] for n in REG_LANDMARKS])
REGRESSOR_MAX_YAW_DEG = 150.0  # beyond this the body is seen from behind: no correction (see below)


def _yaw_matrix(ang: float) -> np.ndarray:
    c, s = math.cos(ang), math.sin(ang)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def regressor_features(P: np.ndarray, W: np.ndarray, image_xy: np.ndarray, visibility: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Features of the learned landmark → joint correction, and the facing rotation they live in.

    P: (22, 3) hand-mapped joints, camera frame (y up, z to the viewer), pelvis at 0, metres.
    W: (33, 3) world landmarks in the same frame and scale, pelvis at 0.
    image_xy: (33, 2) pixels; visibility: (33,).
    Returns (F,) features and Ry (3, 3), the yaw rotation taking the camera frame to the body's facing
    frame (HumanML3D facing rule on P). 3D inputs are expressed in the facing frame; the 2D landmarks
    (centred on the hips, scaled by the torso's pixel height, y up) stay in the image. Every block is
    repeated times cos/sin of the body's yaw to the camera (and its double): depth errors depend on
    the view, so a linear map per view direction.
    """
    Ry = facing_rotation(P)
    yaw = math.atan2(Ry[0, 2], Ry[0, 0])  # rotation angle about y taking camera → facing frame
    Pf = P @ Ry.T
    Wf = W[_REG_IDX] @ Ry.T
    xy = image_xy[_REG_IDX].astype(np.float64)
    hip = (image_xy[LM["left_hip"]] + image_xy[LM["right_hip"]]) / 2
    sho = (image_xy[LM["left_shoulder"]] + image_xy[LM["right_shoulder"]]) / 2
    torso = max(float(np.linalg.norm(sho - hip)), 1e-6)
    xy = (xy - hip) / torso * np.array([1.0, -1.0])
    base = np.concatenate([Pf.ravel(), Wf.ravel(), xy.ravel(), np.clip(visibility[_REG_IDX], 0, 1), [1.0]])
    gates = np.array([1.0, math.cos(yaw), math.sin(yaw), math.cos(2 * yaw), math.sin(2 * yaw)])
    return np.outer(gates, base).ravel(), Ry


@dataclass
class LandmarkRegressor:
    """Learned residual correction: joints = P + reshape(((f − mean) / std) @ weight + bias, (22, 3)) in
    the facing frame (see `regressor_features`), fitted by ridge regression on rendered train-split
    poses (`scripts/make_landmark_regressor.py`). weight: (F, 66); mean, std: (F,); bias: (66,) metres."""

    weight: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    bias: np.ndarray

    @classmethod
    def load(cls, path: Path = REGRESSOR_PATH) -> LandmarkRegressor | None:
        """The bundled regressor, or None when the asset is absent (the hand-made mapping is used)."""
        if not Path(path).is_file():
            return None
        with np.load(path) as z:
            return cls(weight=z["weight"], mean=z["mean"], std=z["std"], bias=z["bias"])

    def correct(self, P: np.ndarray, W: np.ndarray, image_xy: np.ndarray, visibility: np.ndarray) -> np.ndarray:
        """(22, 3) corrected joints in the camera frame (same frame and origin as P)."""
        f, Ry = regressor_features(P, W, image_xy, visibility)
        if f.shape[0] != self.mean.shape[0]:
            raise PoseEstimationError(f"landmark regressor {REGRESSOR_PATH.name} expects {self.mean.shape[0]} "
                                      f"features, got {f.shape[0]}; rerun scripts/make_landmark_regressor.py fit")
        delta = (((f - self.mean) / self.std) @ self.weight + self.bias).reshape(N, 3)
        return (P @ Ry.T + delta) @ Ry


_REGRESSOR_CACHE: dict[str, LandmarkRegressor | None] = {}


def default_regressor() -> LandmarkRegressor | None:
    """The bundled `LandmarkRegressor` (loaded once), or None without the asset."""
    if "default" not in _REGRESSOR_CACHE:
        _REGRESSOR_CACHE["default"] = LandmarkRegressor.load()
    return _REGRESSOR_CACHE["default"]


def landmarks_to_joints(lm: Landmarks, rest: np.ndarray, regressor: LandmarkRegressor | None | str = "default"
                        ) -> JointTargets:
    """Map BlazePose landmarks onto the 22 joints of the rest skeleton `rest` (22, 3) (see module doc).

    regressor: the learned correction, applied when the hips are seen and the whole body is inside
    the image ("default" = the bundled one if present; None = the hand-made mapping only).
    """
    W = lm.world_yup().astype(np.float64)
    seen = (lm.visibility >= MIN_VISIBILITY) & lm.in_image(margin=0.02)
    vis = np.clip(lm.visibility, 0, 1).astype(np.float64)
    notes: list[str] = []
    # BlazePose reports an average-sized body; rest offsets below are in the model's metres, so
    # bring the landmarks to the model's size first (ratio of summed limb lengths, visible ones).
    scale = _size_ratio(W, seen, rest)
    W = W * scale

    def g(name: str) -> np.ndarray:
        return W[LM[name]]

    def ok(*names: str) -> bool:
        return all(seen[LM[n]] for n in names)

    def conf(*names: str) -> float:
        return float(min(vis[LM[n]] for n in names))

    if not ok("left_shoulder", "right_shoulder"):
        raise PoseEstimationError("both shoulders must be visible to read a body pose; give a photo that "
                                  "shows the person's upper body")
    P = np.zeros((N, 3))
    c = np.zeros(N)
    m = np.zeros(N, dtype=bool)
    r_mid_hip = (rest[1] + rest[2]) / 2
    r_mid_sho = (rest[16] + rest[17]) / 2
    rest_frame = _torso_frame(rest[1], rest[2], r_mid_sho - r_mid_hip)
    rest_chest = _torso_frame(rest[16], rest[17], r_mid_sho - r_mid_hip)
    l_sho, r_sho = g("left_shoulder"), g("right_shoulder")
    mid_sho = (l_sho + r_sho) / 2
    hips_ok = ok("left_hip", "right_hip")
    if hips_ok:
        l_hip, r_hip = g("left_hip"), g("right_hip")
        mid_hip = (l_hip + r_hip) / 2
        torso = _torso_frame(l_hip, r_hip, mid_sho - mid_hip)
    else:
        # No hips in view (a portrait): assume an upright torso below the shoulders; nothing below
        # the chest is constrained.
        chest = _torso_frame(l_sho, r_sho, np.array([0.0, 1.0, 0.0]))
        torso = chest
        mid_hip = mid_sho - torso @ (rest_frame.T @ (r_mid_sho - r_mid_hip))
        notes.append("hips not visible: legs, pelvis and spine are not constrained")
    R_t = torso @ rest_frame.T
    chest = _torso_frame(l_sho, r_sho, torso[:, 1])
    R_c = chest @ rest_chest.T
    pelvis = mid_hip + R_t @ (rest[0] - r_mid_hip)
    P[0] = pelvis
    for j in (1, 2):
        P[j] = mid_hip + R_t @ (rest[j] - r_mid_hip)
    for j in (9, 12, 13, 14):
        P[j] = mid_sho + R_c @ (rest[j] - r_mid_sho)
    # spine1/2: between pelvis and spine3 at their rest fractions of height, with the rest offsets.
    for j in (3, 6):
        t = (rest[j][1] - rest[0][1]) / (rest[9][1] - rest[0][1])
        R_mix = R_t if t < 0.5 else R_c
        P[j] = pelvis + t * (P[9] - pelvis) + R_mix @ (rest[j] - (rest[0] + t * (rest[9] - rest[0])))
    hip_c = conf("left_hip", "right_hip") if hips_ok else 0.0
    sho_c = conf("left_shoulder", "right_shoulder")
    c[[0, 1, 2]] = hip_c
    m[[0, 1, 2]] = hips_ok
    c[[3, 6]] = 0.5 * min(hip_c, sho_c)
    m[[3, 6]] = hips_ok
    c[[9, 12, 13, 14]] = 0.8 * sho_c if hips_ok else 0.5 * sho_c
    m[[9, 12, 13, 14]] = True
    c[[16, 17]] = vis[[LM["left_shoulder"], LM["right_shoulder"]]]
    m[[16, 17]] = True
    P[16], P[17] = l_sho, r_sho
    # Limbs straight from landmarks.
    direct = {18: "left_elbow", 19: "right_elbow", 20: "left_wrist", 21: "right_wrist",
              4: "left_knee", 5: "right_knee", 7: "left_ankle", 8: "right_ankle"}
    for j, name in direct.items():
        P[j] = g(name)
        c[j] = vis[LM[name]]
        m[j] = bool(seen[LM[name]]) and bool(m[PARENTS[j]] or j in (18, 19))
    # Legs need the hips: without them the knees are not attached to anything we know.
    for j in (4, 5, 7, 8):
        m[j] &= hips_ok
    for j, (side) in ((10, "left"), (11, "right")):
        heel, toe = f"{side}_heel", f"{side}_foot_index"
        P[j] = g(heel) + 0.65 * (g(toe) - g(heel))
        c[j] = conf(heel, toe)
        m[j] = ok(heel, toe) and bool(m[j - 3])
    # Head: the joint sits below the ears' midpoint, behind the nose (rest offsets of an adult head).
    if ok("left_ear", "right_ear") or ok("nose"):
        ears = (g("left_ear") + g("right_ear")) / 2
        head_up = _unit(ears - P[12])
        P[15] = P[12] + HUMANML3D_22.bone_lengths[15] * _unit(head_up + 0.35 * _unit(g("nose") - ears))
        c[15] = float(max(vis[LM["nose"]], min(vis[LM["left_ear"]], vis[LM["right_ear"]])))
        m[15] = True
    else:
        P[15] = P[12] + R_c @ (rest[15] - rest[12])
    for j, b in LANDMARK_BIAS.items():
        P[j] -= torso @ np.asarray(b)
    _fix_limb_depth(P, m, rest, torso[:, 2] if hips_ok else None)
    # Everything relative to the pelvis.
    origin = P[0].copy()
    P -= origin
    reg = default_regressor() if isinstance(regressor, str) else regressor
    if reg is not None and hips_ok:
        # It was trained on whole bodies in view: landmarks outside the image (a cropped photo) are
        # guesses it has never seen as inputs, so keep the hand mapping there.
        Ry = facing_rotation(P)
        yaw = abs(math.degrees(math.atan2(Ry[0, 2], Ry[0, 0])))
        if not lm.in_image(margin=0.02)[_REG_IDX].all():
            notes.append("body partly outside the image: learned landmark correction not applied")
        elif yaw > REGRESSOR_MAX_YAW_DEG:
            # Trained on views within ±100° of the front; seen from behind it extrapolates (12 val
            # poses, before this limit: at 180° 88 mm with it vs 83 mm without; at 135° 73 vs 78 mm).
            notes.append(f"body turned {yaw:.0f}° from the camera: learned landmark correction not applied")
        else:
            P = reg.correct(P, W - origin, lm.image_xy, lm.visibility)
            P -= P[0]
    c = np.where(m, np.clip(c, 0.05, 1.0), 0.0)
    return JointTargets(points=P, confidence=c, mask=m, notes=notes, origin=origin, scale=scale)


# --------------------------------------------------------------------------- fitting


def _bend_ok(n: np.ndarray, ref: np.ndarray) -> bool:
    return float(n @ ref) > 0


def analytic_pose(P: np.ndarray, mask: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Closed-form local rotations (22, 3, 3) fitting targets P (22, 3) (pelvis at 0) where `mask` allows.

    Bones are aimed from the *fitted* parent position at the target child, so errors do not pile up
    down the chains. Returns the rotations and notes on front/back flips; P is modified in place where
    a shin's depth is flipped.
    """
    notes: list[str] = []
    G = np.tile(np.eye(3), (N, 1, 1))
    X = np.zeros((N, 3))  # fitted joint positions so far

    def off(j: int) -> np.ndarray:
        return rest[j] - rest[PARENTS[j]]

    def place(*js: int) -> None:
        for j in js:
            X[j] = X[PARENTS[j]] + G[PARENTS[j]] @ off(j)

    def have(*js: int) -> bool:
        return all(mask[j] for j in js)

    # Pelvis: hips give the lateral axis, the spine the up axis.
    up_j = 9 if mask[9] else 12
    lat = (1, 2) if have(1, 2) else (16, 17)
    G[0] = align_two(rest[lat[0]] - rest[lat[1]], rest[up_j] - rest[0], P[lat[0]] - P[lat[1]], P[up_j] - P[0])
    place(1, 2, 3)
    for j, child in ((3, 6), (6, 9)):
        G[j] = swing(G[PARENTS[j]] @ off(child), P[child] - X[j]) @ G[PARENTS[j]] if have(child) else G[PARENTS[j]]
        place(child)
    G[9] = align_two(rest[16] - rest[17], rest[12] - rest[9], P[16] - P[17], P[12] - X[9])
    place(12, 13, 14)
    G[12] = swing(G[9] @ off(15), P[15] - X[12]) @ G[9] if have(15) else G[9]
    G[15] = G[12]
    place(15)
    for col, sho in ((13, 16), (14, 17)):
        G[col] = swing(G[9] @ off(sho), P[sho] - X[col]) @ G[9]
        place(sho)
    limbs = ((16, 18, 20), (17, 19, 21), (1, 4, 7), (2, 5, 8))
    for root, mid, end in limbs:
        parent_G = G[PARENTS[root]]
        if not have(mid):
            # Unseen limb: legs straight, arms hanging (not the T-pose), relative to the parent.
            G[root] = G[mid] = G[end] = parent_G @ _REST_HANG.get(root, np.eye(3))
            place(mid, end)
            continue
        u = P[mid] - X[root]
        G[root] = swing(parent_G @ off(mid), u) @ parent_G
        if have(end):
            hinge = HINGES[mid][0]
            w = P[end] - P[mid]
            n = np.cross(u, w)
            sin_bend = float(np.linalg.norm(n)) / max(float(np.linalg.norm(u) * np.linalg.norm(w)), 1e-9)
            bend = math.asin(min(sin_bend, 1.0))
            if float(u @ w) < 0:
                bend = math.pi - bend
            if mid in (4, 5):
                # Knees point forward with the pelvis: a bend the other way is a depth flip of the shin.
                ref = G[0] @ np.array([1.0, 0, 0])
                if bend > math.radians(12) and not _bend_ok(n, ref):
                    flipped = P[end].copy()
                    flipped[2] = 2 * P[mid][2] - P[end][2]
                    n2 = np.cross(u, flipped - P[mid])
                    if _bend_ok(n2, ref):
                        P[end] = flipped
                        foot = 10 if mid == 4 else 11
                        if mask[foot]:
                            P[foot][2] = 2 * P[mid][2] - P[foot][2]
                        n = n2
                        notes.append(f"{HUMANML3D_22.joint_names[mid]}: shin depth flipped (front/back ambiguity)")
                    else:
                        n = ref  # cannot bend backwards: straighten about the anatomical axis
                        notes.append(f"{HUMANML3D_22.joint_names[mid]}: backward bend removed")
            if bend > math.radians(8):
                G[root] = align_two(off(mid), hinge, u, n)
            place(mid)
            G[mid] = swing(G[root] @ off(end), P[end] - X[mid]) @ G[root]
        else:
            G[mid] = G[root]
            place(mid)
        G[end] = G[mid]
        place(end)
    for ankle, foot in ((7, 10), (8, 11)):
        if have(ankle, foot):
            G[ankle] = swing(G[ankle] @ off(foot), P[foot] - X[ankle]) @ G[ankle]
    local = np.empty_like(G)
    local[0] = G[0]
    for i in range(1, N):
        local[i] = G[PARENTS[i]].T @ G[i]
    return local, notes


_REST_HANG = {16: axis_angle_to_matrix(np.array([0.0, 0.0, -1.25])),
              17: axis_angle_to_matrix(np.array([0.0, 0.0, 1.25]))}


def _limit_penalty(R: torch.Tensor) -> torch.Tensor:
    """Hinge and joint-limit penalty of local rotations R (B, 22, 3, 3) → (B,)."""
    pen = torch.zeros(R.shape[0], dtype=R.dtype)
    for j, (axis, _) in HINGES.items():
        a = torch.as_tensor(axis, dtype=R.dtype)
        Rj = R[:, j]
        pen = pen + ((Rj @ a - a) ** 2).sum(-1)  # bend only about the hinge axis
        # Positive flexion only: sin θ about the axis = (R e × R_rest e)… read from the matrix:
        # for a hinge about a, sin θ = ((R b) × b) · a with b ⊥ a; use b = the other unit axis.
        b = torch.roll(a, 1)
        s = (torch.linalg.cross(b.expand_as(Rj[:, :, 0]), Rj @ b, dim=-1) * a).sum(-1)
        pen = pen + torch.relu(-s) ** 2 * 10
    return pen


def fit_pose(targets: JointTargets, rest: np.ndarray, iters: int = 15, device: torch.device | None = None,
             seed: int = 0) -> FitResult:
    """Fit local rotations of the rest skeleton (22, 3) to `targets` (see module doc).

    ≈ 0.1 s on one CPU core; deterministic (no randomness is used; `seed` is kept for API symmetry).
    """
    dev = device or torch.device("cpu")
    P = targets.points.copy()
    mask = targets.mask.copy()
    local0, notes = analytic_pose(P, mask, rest)
    w = torch.as_tensor(targets.confidence * mask, dtype=torch.float32, device=dev)
    tgt = torch.as_tensor(P, dtype=torch.float32, device=dev)
    rest_t = torch.as_tensor(rest, dtype=torch.float32, device=dev)
    init6 = torch.as_tensor(local0[:, :, :2].transpose(0, 2, 1).reshape(N, 6), dtype=torch.float32, device=dev)
    x = init6.clone()[None].requires_grad_(True)
    prior_w = torch.zeros(N, device=dev)
    prior_w[[3, 6, 9, 12, 13, 14]] = 0.002  # spine, neck, collars: stay near the analytic solution
    if iters > 0:
        # A hand-written Adam: torch.optim's first use imports torch._dynamo (seconds of start-up).
        m1, m2 = torch.zeros_like(x), torch.zeros_like(x)
        lr, b1, b2 = 0.01, 0.9, 0.999
        for k in range(1, iters + 1):
            R = cont6d_to_matrix(x)
            J = fk_torch(R, rest_t)
            data = (w * ((J[0] - tgt) ** 2).sum(-1)).sum() / w.sum().clamp_min(1e-6)
            loss = data + 1e-3 * _limit_penalty(R).sum() + (prior_w * ((x[0] - init6) ** 2).sum(-1)).sum()
            (g,) = torch.autograd.grad(loss, x)
            with torch.no_grad():
                m1.mul_(b1).add_(g, alpha=1 - b1)
                m2.mul_(b2).addcmul_(g, g, value=1 - b2)
                x -= lr * (m1 / (1 - b1**k)) / ((m2 / (1 - b2**k)).sqrt() + 1e-8)
    with torch.no_grad():
        R_fit = cont6d_to_matrix(x)[0].double().cpu().numpy()
    # Orthonormalise exactly before converting (float32 round-off).
    U, _, Vt = np.linalg.svd(R_fit)
    R_fit = U @ Vt
    joints = fk_numpy(R_fit, rest)
    wn = targets.confidence * mask
    err = float(np.sqrt((wn * ((joints - P) ** 2).sum(-1)).sum() / max(wn.sum(), 1e-9)))
    aa = matrix_to_axis_angle(R_fit)
    return FitResult(global_orient=aa[0], body_pose=aa[1:], joints=joints, error_m=err, notes=notes)


def facing_rotation(joints: np.ndarray) -> np.ndarray:
    """Rotation about y (3×3) that turns `joints` (22, 3) to face +Z (HumanML3D's across/forward rule)."""
    r_hip, l_hip, r_sho, l_sho = HUMANML3D_22.face_joints
    across = (joints[r_hip] - joints[l_hip]) + (joints[r_sho] - joints[l_sho])
    fwd = np.cross([0.0, 1.0, 0.0], across)
    fwd[1] = 0
    if np.linalg.norm(fwd) < 1e-8:
        return np.eye(3)
    fwd = _unit(fwd)
    ang = math.atan2(fwd[0], fwd[2])  # yaw of the facing direction from +Z towards +X
    c, s = math.cos(-ang), math.sin(-ang)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def canonicalize(fit: FitResult) -> tuple[np.ndarray, np.ndarray]:
    """(joints (22, 3), global_orient (3,)) of `fit` turned to face +Z; body_pose is unchanged."""
    Ry = facing_rotation(fit.joints)
    joints = fit.joints @ Ry.T
    go = matrix_to_axis_angle(Ry @ axis_angle_to_matrix(fit.global_orient))
    return joints, go


def pose_from_landmarks(lm: Landmarks, model: BodyModel | None = None, time_s: float = 0.0,
                        source: str = "image", iters: int = 15,
                        regressor: LandmarkRegressor | None | str = "default"
                        ) -> tuple[KeyframePose, FitResult, JointTargets]:
    """Landmarks → fitted `KeyframePose` in the canonical frame (see module doc; `regressor` as in
    `landmarks_to_joints`)."""
    t0 = time.perf_counter()
    bm = model or load_body_model()
    rest = bm.rest_joints[:N] - bm.rest_joints[0]
    targets = landmarks_to_joints(lm, rest, regressor=regressor)
    fit = fit_pose(targets, rest, iters=iters)
    joints, go = canonicalize(fit)
    notes = list(lm.notes) + targets.notes + fit.notes
    notes.append(f"fit rms error {fit.error_m * 1000:.0f} mm over {int(targets.mask.sum())} joints; "
                 f"{(time.perf_counter() - t0) * 1000:.0f} ms")
    kf = KeyframePose(
        time_s=time_s,
        joints=joints.tolist(),
        joint_mask=targets.mask.tolist(),
        confidence=np.round(targets.confidence, 4).tolist(),
        smpl_pose=fit.body_pose.tolist(),
        global_orient=go.tolist(),
        source=source,
        notes=notes,
    )
    return kf, fit, targets


def mirror_keyframe(kf: KeyframePose, note: str = "mirrored: left and right swapped") -> KeyframePose:
    """`kf` reflected through the body's midplane (x = 0 of the canonical frame): left and right swapped.

    This undoes the typical left/right flip of a fit: BlazePose taking a person's back for their
    front labels their right side as left and reflects the depths, so the fit is the true pose
    reflected through the image plane; turned to face +Z, that is the reflection x → −x.
    Joints: `representation.mirror_joints` (negate x, swap left/right joints). SMPL rotations: the
    reflection M = diag(−1, 1, 1) maps a rotation R to M R M, i.e. axis-angle (x, y, z) → (x, −y, −z),
    each joint taking its mirror joint's rotation; mask and confidence follow their joints. The facing
    (+Z) is kept, and so is `root_position`: where the pelvis must be does not change.
    """
    from ikmo.motion_model.representation.features import mirror_joints

    mm = list(HUMANML3D_22.mirror_map)
    flip = np.array([1.0, -1.0, -1.0])
    joints = mirror_joints(kf.joints_array().astype(np.float64), HUMANML3D_22)
    update: dict[str, object] = {
        "joints": joints.tolist(),
        "joint_mask": [kf.joint_mask[m] for m in mm],
        "confidence": [kf.confidence[m] for m in mm],
        "notes": [*kf.notes, note],
    }
    if kf.smpl_pose is not None:  # body_pose row j-1 holds joint j
        body = np.asarray(kf.smpl_pose, dtype=np.float64)
        update["smpl_pose"] = (body[[m - 1 for m in mm[1:]]] * flip).tolist()
    if kf.global_orient is not None:
        update["global_orient"] = (np.asarray(kf.global_orient, dtype=np.float64) * flip).tolist()
    return kf.model_copy(update=update)


def project_fit_to_image(fit: FitResult, targets: JointTargets, lm: Landmarks) -> np.ndarray:
    """(22, 2) pixel positions of the fitted joints on the photo: a weak-perspective camera
    (scale + offset) fitted from the visible world landmarks to their pixel positions."""
    W = lm.world_yup().astype(np.float64) * targets.scale
    ok = lm.visibility >= MIN_VISIBILITY
    if ok.sum() < 3:
        ok = np.ones_like(ok)
    xy = W[ok][:, :2] * np.array([1.0, -1.0])
    px = lm.image_xy[ok].astype(np.float64)
    xc, pc = xy - xy.mean(0), px - px.mean(0)
    s = float((xc * pc).sum() / max((xc**2).sum(), 1e-12))
    t = px.mean(0) - s * xy.mean(0)
    J = fit.joints + targets.origin
    return s * J[:, :2] * np.array([1.0, -1.0]) + t


def _reading(lm: Landmarks, image: np.ndarray, kf: KeyframePose, fit: FitResult, targets: JointTargets,
             seconds: dict[str, float], with_images: bool) -> PhotoReading:
    """The one reading type; the photo and the fit's check image only when asked for."""
    check = None
    if with_images:
        from .overlay import draw_overlay

        # The file name only: this image may go to a remote vision provider, the local path must not.
        caption = f"{Path(kf.source).name}  fit rms {fit.error_m * 1000:.0f} mm"
        check = draw_overlay(image, lm, kf.joints_array(), np.asarray(kf.joint_mask),
                             project_fit_to_image(fit, targets, lm), caption)
    return PhotoReading(keyframe=kf, landmarks=lm, fit=fit, seconds=seconds,
                        image=image if with_images else None, check_image=check)


def read_photo(path: str | os.PathLike[str], time_s: float, with_images: bool = False) -> PhotoReading:
    """A photo's whole reading with the process's shared BlazePose detector: landmarks → SMPL fit →
    canonical KeyframePose at `time_s` (`image_to_pose` is the same path with a detector and body
    model of the caller's choosing). with_images: keep the photo and render the fit's check image."""
    from .pose_estimation import detect_landmarks

    t0 = time.perf_counter()
    lm, image = detect_landmarks(path)
    t1 = time.perf_counter()
    kf, fit, targets = pose_from_landmarks(lm, time_s=time_s, source=str(path))
    secs = {"detect": t1 - t0, "fit": time.perf_counter() - t1}
    return _reading(lm, image, kf, fit, targets, secs, with_images)


def image_to_pose(image: np.ndarray | str | os.PathLike[str], time_s: float = 0.0, model_complexity: int = 1,
                  detector: LandmarkDetector | None = None, model: BodyModel | None = None,
                  source: str | None = None, iters: int = 15,
                  regressor: LandmarkRegressor | None | str = "default", with_images: bool = False
                  ) -> PhotoReading:
    """The whole image → keyframe path: read (a path or an (H, W, 3) uint8 array), detect, map, fit.

    with_images: keep the image and render the fit's check image (`PhotoReading.overlay`).
    Raises InputFileError for an unreadable image, PoseEstimationError when no usable person is found.
    """
    t_load = time.perf_counter()
    model = model or load_body_model()
    t0 = time.perf_counter()
    if isinstance(image, (str, os.PathLike)):
        src = source or Path(image).name
        arr = load_image(image)
    else:
        src = source or "image"
        arr = check_image_array(image)
    t1 = time.perf_counter()
    if detector is None:
        with LandmarkDetector(model_complexity) as det:
            lm = det.detect(arr, source=src)
    else:
        lm = detector.detect(arr, source=src)
    t2 = time.perf_counter()
    kf, fit, targets = pose_from_landmarks(lm, model, time_s=time_s, source=f"image:{src}", iters=iters,
                                           regressor=regressor)
    t3 = time.perf_counter()
    secs = {"load_model": t0 - t_load, "read": t1 - t0, "detect": t2 - t1, "fit": t3 - t2}
    return _reading(lm, arr, kf, fit, targets, secs, with_images)
