"""Evaluation metrics of text-to-motion generation and of motion control: pure numpy functions.

Distribution metrics (Guo et al., CVPR 2022, "Generating Diverse and Natural 3D Human Motions from
Text"; the protocol of MDM, OmniControl, MotionLCM): FID, Diversity, R-precision, matching score,
computed on embeddings of a text-motion evaluator (`ikmo.eval.evaluator`).

Control metrics (OmniControl, Xie et al., ICLR 2024, `data_loaders/humanml/utils/metrics.py` of
neu-vi/OmniControl, which takes them from GMD, Karunratanakul et al., ICCV 2023): foot skating ratio,
Traj err, Loc err, Avg err. Pose metrics: MPJPE, root-aligned MPJPE, PA-MPJPE (Procrustes).

Units: joint positions are metres, y up (HumanML3D convention, floor at y = 0); errors are metres.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg

from ikmo.motion_model.errors import MotionDataError

# Foot skating lives with the model (the generate tool reports it); re-exported here for the benchmarks.
from ikmo.motion_model.motion_metrics import (  # noqa: F401
    SKATE_HEIGHT_M,
    SKATE_SPEED_M_S,
    SKATE_WINDOW,
    foot_skating_ratio,
)
from ikmo.motion_model.motion_metrics import check_positions as _check_joints

log = logging.getLogger(__name__)

# The real clips' foot skating level (`ikmo bench control`'s real row, 2026-11): the bar generated
# motions are held to.
REAL_SKATING = 0.085
# That level is the mean over all real clips, most of which stay in place (0.002). Real clips that travel
# (pelvis over TRAVEL_SPEED_M_S on average) skate 0.187 on average (602 test clips, 2026-12-07: 216
# travel, median 0.181, only 25 % of them under REAL_SKATING): at push-off and landing a toe under 5 cm
# moves faster than 0.5 m/s. So a walk is held to the level 90 % of the real travelling clips meet
# (test 0.375, validation 0.368), a motion in place to REAL_SKATING (99 % of real ones meet it).
TRAVEL_SPEED_M_S = 0.5
REAL_SKATING_TRAVELLING = 0.375

# --------------------------------------------------------------------------- distribution metrics


def activation_statistics(acts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of activations `acts`: (N, D), N >= 2."""
    acts = np.asarray(acts, dtype=np.float64)
    if acts.ndim != 2 or acts.shape[0] < 2:
        raise MotionDataError(f"activation statistics need (N>=2, D) embeddings, got shape {acts.shape}")
    return acts.mean(axis=0), np.cov(acts, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance of two Gaussians: |mu1-mu2|² + Tr(S1 + S2 - 2 (S1 S2)^½).

    mu: (D,), sigma: (D, D). When S1·S2 is singular (fewer samples than dimensions) its square
    root is taken of (S1 + eps I)(S2 + eps I) instead, as in the reference implementation of FID.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise MotionDataError(f"FID statistics disagree in shape: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    # sqrtm of a product of PSD matrices is real up to round-off; drop the imaginary dust.
    covmean = np.real(covmean)
    # >= 0 in exact arithmetic; round-off can leave a tiny negative for identical sets
    return max(0.0, float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)))


def fid(acts_a: np.ndarray, acts_b: np.ndarray) -> float:
    """FID between two sets of embeddings (N_a, D) and (N_b, D)."""
    return frechet_distance(*activation_statistics(acts_a), *activation_statistics(acts_b))


def diversity(acts: np.ndarray, n_pairs: int = 300, seed: int = 0) -> float:
    """Mean euclidean distance between `n_pairs` random pairs of distinct embeddings of `acts`: (N, D).

    Guo et al. draw 300 pairs; they may draw an embedding with itself, which only pulls the value
    towards 0, so pairs here are of distinct items.
    """
    acts = np.asarray(acts, dtype=np.float64)
    n = acts.shape[0]
    if n < 2:
        raise MotionDataError(f"diversity needs at least 2 embeddings, got {n}")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n, size=n_pairs)
    # An offset in [1, n-1] guarantees a different partner, uniformly among the others.
    second = (first + rng.integers(1, n, size=n_pairs)) % n
    return float(np.linalg.norm(acts[first] - acts[second], axis=1).mean())


def euclidean_distance_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) euclidean distances between rows of a: (N, D) and b: (M, D)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d2 = (a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :]
    return np.sqrt(np.maximum(d2, 0.0))


@dataclass
class RetrievalScores:
    """R-precision (top-1..top-k accuracy of finding a text's own motion in a pool) and matching score."""

    r_precision: list[float]
    matching_score: float
    pool_size: int
    n_pools: int


def r_precision(text_emb: np.ndarray, motion_emb: np.ndarray, top_k: int = 3, pool_size: int = 32,
                seed: int | None = None) -> RetrievalScores:
    """R-precision as Guo et al.: in pools of `pool_size` pairs, rank the motions by euclidean
    distance to each text; top-k is the share of texts whose own motion ranks within k.

    text_emb, motion_emb: (N, D), row i of each belongs together. Pools are consecutive rows (after
    a shuffle when `seed` is given); a remainder smaller than a pool is dropped as in the
    reference (drop_last), unless N < pool_size, when one pool of N is used. Matching score: mean
    distance of a text to its own motion.
    """
    text_emb, motion_emb = np.asarray(text_emb), np.asarray(motion_emb)
    if text_emb.shape != motion_emb.shape or text_emb.ndim != 2:
        raise MotionDataError(f"text and motion embeddings must both be (N, D); got {text_emb.shape}, "
                              f"{motion_emb.shape}")
    n = text_emb.shape[0]
    if n < 2:
        raise MotionDataError("R-precision needs at least 2 text-motion pairs")
    order = np.random.default_rng(seed).permutation(n) if seed is not None else np.arange(n)
    size = min(pool_size, n)
    n_pools = n // size
    hits = np.zeros(top_k)
    match = 0.0
    for p in range(n_pools):
        idx = order[p * size:(p + 1) * size]
        dist = euclidean_distance_matrix(text_emb[idx], motion_emb[idx])
        own = np.diag(dist)
        # rank of the own motion = number of motions strictly closer (ties count in its favour)
        rank = (dist < own[:, None]).sum(axis=1)
        hits += np.array([(rank < k + 1).sum() for k in range(top_k)])
        match += own.sum()
    used = n_pools * size
    return RetrievalScores([float(h / used) for h in hits], float(match / used), size, n_pools)


# --------------------------------------------------------------------------- pose errors


def root_align(joints: np.ndarray, root: int = 0) -> np.ndarray:
    """Subtract the root joint: joints (..., J, 3) → (..., J, 3) with joint `root` at the origin."""
    joints = np.asarray(joints)
    return joints - joints[..., root:root + 1, :]


def mpjpe(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean per-joint position error, metres. pred, target: (..., J, 3); mask: (..., J) bool, the
    joints that count (all when None). No alignment: align first (`root_align`, `procrustes_align`)."""
    pred, target = _check_joints(pred, "pred"), _check_joints(target, "target")
    if pred.shape != target.shape:
        raise MotionDataError(f"pred {pred.shape} and target {target.shape} differ in shape")
    err = np.linalg.norm(pred - target, axis=-1)
    if mask is None:
        return float(err.mean())
    mask = np.broadcast_to(np.asarray(mask, dtype=bool), err.shape)
    if not mask.any():
        raise MotionDataError("MPJPE over an empty mask: no joint is constrained")
    return float(err[mask].mean())


def root_aligned_mpjpe(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None,
                       root: int = 0) -> float:
    """MPJPE after moving both poses' root joint to the origin; shapes as `mpjpe`."""
    return mpjpe(root_align(pred, root), root_align(target, root), mask)


def procrustes_align(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Similarity transform (scale, rotation, translation) of `pred` that best fits `target`.

    pred, target: (J, 3) or (B, J, 3); mask: (J,) or (B, J) bool, the joints the fit uses (>= 3).
    Returns pred aligned, same shape. Umeyama's solution, reflections excluded.
    """
    pred, target = _check_joints(pred, "pred"), _check_joints(target, "target")
    single = pred.ndim == 2
    P, Q = (pred[None], target[None]) if single else (pred, target)
    if P.shape != Q.shape or P.ndim != 3:
        raise MotionDataError(f"procrustes needs matching (J, 3) or (B, J, 3) poses, got {pred.shape}, {target.shape}")
    W = np.ones(P.shape[:2]) if mask is None else np.broadcast_to(np.asarray(mask, dtype=np.float64), P.shape[:2])
    if (W.sum(1) < 3).any():
        raise MotionDataError("procrustes alignment needs at least 3 joints per pose")
    w = (W / W.sum(1, keepdims=True))[..., None]  # (B, J, 1)
    mu_p, mu_q = (P * w).sum(1, keepdims=True), (Q * w).sum(1, keepdims=True)
    Pc, Qc = P - mu_p, Q - mu_q
    var_p = (w * Pc * Pc).sum((1, 2))  # (B,)
    K = np.einsum("bji,bjk->bik", w * Qc, Pc)  # (B, 3, 3) covariance target x pred
    U, S, Vt = np.linalg.svd(K)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.ones_like(S)
    D[:, -1] = d
    R = U @ (D[..., None] * Vt)  # (B, 3, 3)
    scale = (S * D).sum(1) / np.maximum(var_p, 1e-12)
    out = scale[:, None, None] * np.einsum("bik,bjk->bji", R, Pc) + mu_q
    return out[0] if single else out


def pa_mpjpe(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """MPJPE after Procrustes alignment of each pose (scale, rotation, translation), metres.

    pred, target: (J, 3) or (B, J, 3); mask: (J,) or (B, J) bool, joints used for the fit and the error.
    """
    return mpjpe(procrustes_align(pred, target, mask), target, mask)


# --------------------------------------------------------------------------- physical plausibility


def mean_jerk(joints: np.ndarray, fps: float = 20.0) -> float:
    """Mean magnitude of the third time derivative of the joint positions, m/s³ (smoothness; the real
    clips' value is the reference, since mocap has its own jitter).

    joints: (T, J, 3) metres, T >= 4 (else NaN: no third difference exists)."""
    j = _check_joints(joints, "joints")
    if j.ndim != 3 or j.shape[0] < 4:
        return float("nan")
    return float(np.linalg.norm(np.diff(j, n=3, axis=0), axis=-1).mean() * fps ** 3)


def travels(joints: np.ndarray, fps: float = 20.0) -> bool:
    """Whether the pelvis (joint 0) covers more than `TRAVEL_SPEED_M_S` on average over the ground plane.
    joints: (T, J, 3) metres, y up, T >= 2."""
    # Imported here: the trajectory module pulls in the pydantic constraint models, and this module stays
    # cheap to import for the reports that only read its constants.
    from ikmo.tools.trajectory import path_length

    j = _check_joints(joints, "joints")
    if j.ndim != 3 or j.shape[0] < 2:
        raise MotionDataError(f"travel needs (T>=2, J, 3) joints, got {j.shape}")
    return bool(path_length(j[:, 0]) * fps / (j.shape[0] - 1) > TRAVEL_SPEED_M_S)


def real_skating_level(joints: np.ndarray, fps: float = 20.0) -> float:
    """The skating level real clips of the same kind meet: `REAL_SKATING_TRAVELLING` for a motion that
    travels, `REAL_SKATING` for one in place. joints: (T, J, 3) metres, y up."""
    return REAL_SKATING_TRAVELLING if travels(joints, fps) else REAL_SKATING


def ground_penetration(joints: np.ndarray) -> float:
    """Mean depth of the lowest joint below the floor (y = 0) over the frames, metres (0 when no joint
    goes under). joints: (T, J, 3) metres, y up."""
    low = _check_joints(joints, "joints")[..., 1].min(axis=-1)
    return float(np.clip(-low, 0.0, None).mean())


def floating_ratio(joints: np.ndarray, height_m: float = SKATE_HEIGHT_M) -> float:
    """Share of frames in which no joint is within `height_m` of the floor (the body hangs in the air;
    jumps and running flight count too, so compare with the real clips). joints: (T, J, 3) metres, y up."""
    low = _check_joints(joints, "joints")[..., 1].min(axis=-1)
    return float((low > height_m).mean())


# --------------------------------------------------------------------------- control metrics


def control_point_errors(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Euclidean error of every controlled point of one motion, metres.

    pred, target: (T, J, 3) global positions; mask: (T, J) bool (whole joints controlled) or
    (T, J, 3) bool (per coordinate, e.g. a ground-plane trajectory controls x and z only: the
    error is then measured over the controlled coordinates). Returns (K,) errors of the K
    controlled (frame, joint) points, in frame-major order. OmniControl computes the same
    masked norm (`control_l2`).
    """
    pred, target = _check_joints(pred, "pred"), np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape:
        raise MotionDataError(f"pred {pred.shape} and control target {target.shape} differ in shape")
    mask = np.asarray(mask, dtype=bool)
    if mask.shape == pred.shape[:-1]:
        mask = np.repeat(mask[..., None], 3, axis=-1)
    if mask.shape != pred.shape:
        raise MotionDataError(f"control mask {mask.shape} fits neither {pred.shape[:-1]} nor {pred.shape}")
    point = mask.any(-1)
    diff = np.where(mask, pred - np.where(mask, target, 0.0), 0.0)
    return np.linalg.norm(diff, axis=-1)[point]


@dataclass
class ControlErrors:
    """OmniControl's control metrics over a set of motions.

    traj_err[th]: share of motions with any controlled point farther than `th` metres (a failed
    trajectory; OmniControl's "strict" mode). loc_err[th]: share of controlled points farther than
    `th`. avg_err: mean error over all controlled points, metres. Motions with no controlled point
    count in neither.
    """

    traj_err: dict[float, float] = field(default_factory=dict)
    loc_err: dict[float, float] = field(default_factory=dict)
    avg_err: float = float("nan")
    n_motions: int = 0
    n_points: int = 0


def aggregate_control_errors(errors: Sequence[np.ndarray], thresholds: Sequence[float] = (0.2, 0.5)
                             ) -> ControlErrors:
    """Pool per-motion controlled-point errors (each (K_i,), from `control_point_errors`)."""
    errs = [np.asarray(e, dtype=np.float64).ravel() for e in errors if np.size(e) > 0]
    if not errs:
        log.warning("no controlled points in %d motions: control errors are undefined", len(errors))
        return ControlErrors(traj_err={t: float("nan") for t in thresholds},
                             loc_err={t: float("nan") for t in thresholds})
    allp = np.concatenate(errs)
    return ControlErrors(
        traj_err={t: float(np.mean([(e > t).any() for e in errs])) for t in thresholds},
        loc_err={t: float((allp > t).mean()) for t in thresholds},
        avg_err=float(allp.mean()),
        n_motions=len(errs),
        n_points=int(allp.size),
    )
