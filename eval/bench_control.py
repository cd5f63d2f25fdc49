"""`ikmo bench control`: the controlled-generation benchmark and its ablations on the same cases.

Methods (rows of the table), all sampled with the same seeds on the same cases (eval/cases.py):

  real            the real test windows themselves (reference: FID 0, the data's own skating)
  ikmo            full IKMo: decoupled ControlNet + motion optimization
  no_footlock     full IKMo without the foot-lock post-process (footlock.py)
  no_projection   ControlNet + stage 1 as gradient steps only (no exact projection; the paper's form:
                  L-BFGS on the final clean motion, `OptimizationConfig.gradient_only`)
  no_optimization ControlNet only (stage 1 off)
  no_controlnet   motion optimization only (stage 2 skipped)
  joint_encoder   one joint control encoder instead of the decoupled pair (a separately trained
                  checkpoint, `joint_weights`) + motion optimization
  joint_no_optimization  the joint encoder's ControlNet alone: with no_optimization, the
                  decoupled-vs-joint comparison that stage 1's exact projection cannot mask
  joint_no_projection    the joint encoder with stage 1 as gradient steps only (pairs with
                  no_projection: where the gradient steps start from decides what they end at)
  unconditioned   the base model from the caption alone (no constraints); its control errors say
                  how far an unconstrained motion lands from the constraints
  baseline_ikmo, baseline_no_footlock, baseline_no_optimization
                  full IKMo, without the foot lock and the ControlNet alone with other weights
                  (`--baseline-weights`, e.g. the bundled ones while judging new ones; each goes with
                  its method): old and new side by side in one run

Metrics: FID, R-precision top-1/2/3 and matching score, Diversity (on the embeddings of
`ikmo.eval.evaluator`, trained on our corpus: NOT comparable to published HumanML3D numbers),
foot skating ratio, Traj err / Loc err at 0.2 m and 0.5 m and Avg err on the pelvis-trajectory
constraint (OmniControl's definitions, eval/metrics.py), keyframe MPJPE after root alignment
(the keyframe turned to the generated body's facing, as the model's Align does), seconds per motion.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ikmo.motion_model.control.align import facing_yaw, rotate_y
from ikmo.motion_model.errors import ConfigError
from ikmo.motion_model.fileio import write_json
from ikmo.motion_model.model_config import FootLockConfig, OptimizationConfig
from ikmo.motion_model.representation.skeleton import FPS
from ikmo.motion_model.sampling import MotionModel, sample

from . import metrics
from .agents.expectations import facing_vs_travel, walks_forward
from .cases import ControlCase
from .evaluator import Evaluator

log = logging.getLogger(__name__)

METHODS = ("real", "ikmo", "no_footlock", "no_projection", "no_optimization", "no_controlnet", "joint_encoder",
           "joint_no_optimization", "joint_no_projection", "unconditioned", "baseline_ikmo", "baseline_no_footlock",
           "baseline_no_optimization")
BASELINE_METHODS = ("baseline_ikmo", "baseline_no_footlock", "baseline_no_optimization")
THRESHOLDS = (0.2, 0.5)
# The joint-encoder ablation, trained on the same budget as the bundled decoupled ControlNet.
BUNDLED_JOINT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "joint_encoder"

# Targets of the issue (section 6), reported against in the table.
TARGETS = {"avg_err": 0.03, "loc_err_0.5": 0.01, "keyframe_mpjpe": 0.05, "skating_ratio": 0.08}


@dataclass
class MethodRun:
    """How to produce one method's motions: which model, with which stage switches."""

    name: str
    model: MotionModel | None  # None: the real motions
    use_control: bool = True
    use_controlnet: bool = True
    optimization: OptimizationConfig | None = None
    foot_lock: FootLockConfig | None = None


@dataclass
class BenchConfig:
    n_cases: int = 64
    seed: int = 0
    batch_size: int = 16
    steps: int | None = None
    guidance_scale: float | None = None
    diversity_pairs: int = 300
    # Score the motions as `ikmo generate` writes them (rigid rig, feet locked again): the request table.
    user_rig: bool = False
    notes: list[str] = field(default_factory=list)


def keyframe_errors(joints: np.ndarray, case: ControlCase, align_yaw: bool = True) -> np.ndarray:
    """Per-keyframe root-aligned MPJPE (K,), metres. joints: (T, 22, 3) generated global joints.

    Both poses have the pelvis at the origin; the keyframe (canonical facing) is turned to the
    generated body's facing yaw at that frame when `align_yaw`, as the model's Align does.
    """
    c = case.control()
    out = []
    for f in c.keyframe_indices():
        pred = torch.as_tensor(joints[f], dtype=torch.float64)
        target = c.pose[f].double()
        if align_yaw:
            target = rotate_y(target, facing_yaw(pred))
        out.append(metrics.root_aligned_mpjpe(pred.numpy(), target.numpy(), c.pose_mask[f].numpy()))
    return np.asarray(out)


def trajectory_errors(joints: np.ndarray, case: ControlCase) -> np.ndarray:
    """(K,) errors of the pelvis at the K trajectory-constrained frames, metres (masked coordinates)."""
    c = case.control()
    T = joints.shape[0]
    target = np.zeros((T, joints.shape[1], 3))
    mask = np.zeros((T, joints.shape[1], 3), dtype=bool)
    target[:, 0] = c.traj.numpy()[:T]
    mask[:, 0] = c.traj_mask.numpy()[:T]
    return metrics.control_point_errors(joints, target, mask)


def generate(run: MethodRun, cases: Sequence[ControlCase], cfg: BenchConfig,
             on_batch: Callable[[int, int], None] | None = None) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Motions of one method for all cases: (features list of (T-1, 263), joints list of (T, 22, 3),
    seconds per motion). Batch b uses seed cfg.seed + b for every method, so methods share noise.
    A case's segments condition their own frames, as in `ikmo generate`; with `cfg.user_rig` the
    motions are the files a user gets (`tools.generate.onto_rig`), features re-derived from them."""
    if run.model is None:
        if any(c.features is None or c.joints is None for c in cases):
            raise ConfigError("the 'real' method needs real motions; request cases have none")
        return [c.features for c in cases], [c.joints for c in cases], 0.0  # type: ignore[misc]
    if cfg.user_rig:  # the tools' writers, only for the request table
        from ikmo.tools.exports import motion_features
        from ikmo.tools.generate import onto_rig
    feats, joints = [], []
    t0 = time.perf_counter()
    n_batches = math.ceil(len(cases) / cfg.batch_size)
    for b in range(n_batches):
        batch = cases[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        controls = [c.control() for c in batch] if run.use_control else None
        timed = [c.spec.description.timed_texts() for c in batch]
        motions = sample(run.model, [c.text for c in batch], [c.n_frames for c in batch], controls,
                         seed=cfg.seed + b, steps=cfg.steps, guidance_scale=cfg.guidance_scale,
                         optimization=run.optimization, use_controlnet=run.use_controlnet,
                         foot_lock=run.foot_lock, timed_texts=timed if any(timed) else None)
        for m, c in zip(motions, batch, strict=True):
            if cfg.user_rig:
                j = onto_rig(m.joints, run.foot_lock or run.model.foot_lock, c.control().pose_mask.numpy())
                feats.append(motion_features(j))
                joints.append(j)
            else:
                feats.append(m.features)
                joints.append(m.joints)
        if on_batch is not None:
            on_batch(b + 1, n_batches)
    return feats, joints, (time.perf_counter() - t0) / len(cases)


def facing_errors(joints: Sequence[np.ndarray], cases: Sequence[ControlCase]) -> list[float]:
    """Per motion that walks forwards (by its segments' actions, or its caption read by the offline
    parser), the mean angle between the body's facing and its direction of travel, degrees; motions
    with fewer than 10 frames faster than 0.3 m/s say nothing and are left out."""
    from ikmo.agents.offline_parser import parse_request

    out = []
    for j, c in zip(joints, cases, strict=True):
        segs = c.spec.description.segments
        actions = [s.action for s in segs] if segs else [a.action for a in parse_request(c.text).actions]
        if not walks_forward(actions):
            continue
        mean, moving = facing_vs_travel(j, FPS)
        if mean is not None and moving >= 10:
            out.append(mean)
    return out


def score(name: str, feats: Sequence[np.ndarray], joints: Sequence[np.ndarray], cases: Sequence[ControlCase],
          evaluator: Evaluator, real_emb: np.ndarray, text_emb: np.ndarray, cfg: BenchConfig,
          align_yaw: bool = True) -> dict[str, Any]:
    """All metrics of one method's motions (one per case, in case order)."""
    emb = evaluator.embed_motions(list(feats))
    rp = metrics.r_precision(text_emb, emb, top_k=3, pool_size=32)
    traj = [trajectory_errors(j, c) for j, c in zip(joints, cases, strict=True)]
    ce = metrics.aggregate_control_errors(traj, THRESHOLDS)
    kfs = [keyframe_errors(j, c, align_yaw) for j, c in zip(joints, cases, strict=True)]
    kf = np.concatenate(kfs)
    skating = [metrics.foot_skating_ratio(j) for j in joints]
    skate_level = [metrics.real_skating_level(j, FPS) for j in joints]
    facing = facing_errors(joints, cases)
    sim = np.sum(emb * text_emb, axis=1)
    jerk = [metrics.mean_jerk(j, FPS) for j in joints]
    floating = [metrics.floating_ratio(j) for j in joints]
    row: dict[str, Any] = {
        "method": name,
        "fid": metrics.fid(real_emb, emb),
        "r_precision_top1": rp.r_precision[0],
        "r_precision_top2": rp.r_precision[1],
        "r_precision_top3": rp.r_precision[2],
        "matching_score": rp.matching_score,
        "diversity": metrics.diversity(emb, cfg.diversity_pairs, seed=cfg.seed),
        "skating_ratio": float(np.mean(skating)),
        "skating_ok_share": float(np.mean(np.asarray(skating) <= metrics.REAL_SKATING)),
        "skating_ok_kind_share": float(np.mean(np.asarray(skating) <= np.asarray(skate_level))),
        "n_travelling": int(sum(v == metrics.REAL_SKATING_TRAVELLING for v in skate_level)),
        "facing_err_median_deg": float(np.median(facing)) if facing else float("nan"),
        "n_forward_walks": len(facing),
        "text_similarity": float(np.mean(sim)),
        "jerk": float(np.mean(jerk)),
        "penetration_m": float(np.mean([metrics.ground_penetration(j) for j in joints])),
        "floating_ratio": float(np.mean(floating)),
        "avg_err": ce.avg_err,
        # The median case's mean distance: the ControlNet alone is a few cm off on most test paths and
        # metres off on a few fast ones, which the mean over points (Avg err) does not show.
        "avg_err_case_median": _median_case(traj),
        "keyframe_mpjpe": float(kf.mean()) if kf.size else float("nan"),
        "n_motions": len(joints),
        "n_traj_points": ce.n_points,
        "n_keyframes": int(kf.size),
        # Per case, in case order (None: the case has no such constraint), for paired comparisons
        # across runs (`bench_compare`).
        "per_case": {"traj_err": [_mean_or_none(e) for e in traj], "keyframe_mpjpe": [_mean_or_none(e) for e in kfs],
                     "skating": [float(v) for v in skating], "text_similarity": [float(v) for v in sim],
                     "jerk": [float(v) for v in jerk], "floating": [float(v) for v in floating],
                     "skating_level": [float(v) for v in skate_level]},
    }
    for t in THRESHOLDS:
        row[f"traj_err_{t}"] = ce.traj_err[t]
        row[f"loc_err_{t}"] = ce.loc_err[t]
    return row


def _mean_or_none(v: np.ndarray) -> float | None:
    return float(v.mean()) if v.size else None


def _median_case(errors: Sequence[np.ndarray]) -> float:
    """Median over the cases with points of each case's mean error (NaN when no case has one)."""
    means = [float(e.mean()) for e in errors if e.size]
    return float(np.median(means)) if means else float("nan")


def run_control_benchmark(runs: Sequence[MethodRun], cases: Sequence[ControlCase], evaluator: Evaluator,
                          cfg: BenchConfig, out: Path | None = None,
                          on_progress: Callable[[str, int, int], None] | None = None,
                          reference: Sequence[np.ndarray] | None = None, benchmark: str = "control",
                          ) -> dict[str, Any]:
    """Generate and score every method on the same cases; write JSON to `out` when given.

    reference: the real motions' features ((T-1, 263) each) FID is measured against; default the
    cases' own (test clips). Request cases have none: pass the test clips'. R-precision and the text
    similarity score each motion against its case's `prompt` (the request's words, or the caption)."""
    if len(cases) < 2:
        raise ConfigError("the control benchmark needs at least 2 cases for FID and R-precision; raise --n-cases")
    if reference is None:
        if any(c.features is None for c in cases):
            raise ConfigError("request cases have no real motions: pass the reference motions for FID")
        reference = [c.features for c in cases]  # type: ignore[misc]
    real_emb = evaluator.embed_motions(list(reference))
    text_emb = evaluator.embed_texts([c.prompt for c in cases])
    rows = []
    for run in runs:
        log.info("bench control: %s on %d cases", run.name, len(cases))
        cb = (lambda b, n, _name=run.name: on_progress(_name, b, n)) if on_progress else None
        feats, joints, sec = generate(run, cases, cfg, cb)
        row = score(run.name, feats, joints, cases, evaluator, real_emb, text_emb, cfg,
                    align_yaw=(run.optimization or (run.model.optimization if run.model else OptimizationConfig())
                               ).align_yaw)
        row["seconds_per_motion"] = sec
        rows.append(row)
        log.info("%s: %s", run.name, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()
                                      if k != "per_case"})
    model = next((r.model for r in runs if r.model is not None), None)
    result: dict[str, Any] = {
        "benchmark": benchmark,
        "n_cases": len(cases),
        "seed": cfg.seed,
        "steps": cfg.steps or (model.diffusion.cfg.sample_steps if model else None),
        "guidance_scale": cfg.guidance_scale if cfg.guidance_scale is not None else (
            model.diffusion.cfg.guidance_scale if model else None),
        "optimization": model.optimization.model_dump() if model else None,
        "evaluator": evaluator.info.get("path", ""),
        "evaluator_note": "FID/R-precision/Diversity use an evaluator trained on our corpus; "
                          "not comparable to published HumanML3D numbers.",
        "targets": TARGETS,
        "notes": cfg.notes,
        "cases": [{"id": c.case_id, "text": c.text, "request": c.request, "group": c.group, "n_frames": c.n_frames,
                   "keyframes": c.control().keyframe_indices()} for c in cases],
        "results": rows,
    }
    if out is not None:
        write_json(out, result)
        log.info("wrote %s", out)
    return result


def _fmt(v: Any, digits: int = 3) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


TABLE_COLUMNS = (
    ("method", "method"), ("fid", "FID"), ("r_precision_top3", "R@3"), ("diversity", "Div"),
    ("skating_ratio", "Skate"), ("traj_err_0.2", "Traj@.2"), ("traj_err_0.5", "Traj@.5"),
    ("loc_err_0.2", "Loc@.2"), ("loc_err_0.5", "Loc@.5"), ("avg_err", "AvgErr"), ("avg_err_case_median", "AvgErr p50"),
    ("keyframe_mpjpe", "KF-MPJPE"), ("text_similarity", "Sim"), ("skating_ok_share", "Skate≤real"),
    ("skating_ok_kind_share", "Skate≤real(kind)"),
    ("facing_err_median_deg", "Facing°"), ("jerk", "Jerk"), ("penetration_m", "Pen"), ("floating_ratio", "Float"),
    ("seconds_per_motion", "s/motion"),
)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width (and markdown-compatible) table of benchmark rows."""
    head = [h for _, h in TABLE_COLUMNS]
    body = [[_fmt(r.get(k, float("nan"))) for k, _ in TABLE_COLUMNS] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(b) for b in body)])


def build_runs(model: MotionModel | None, methods: Sequence[str], joint_model: MotionModel | None = None,
               notes: list[str] | None = None, baseline_model: MotionModel | None = None) -> list[MethodRun]:
    """The MethodRuns for `methods` (names from METHODS). A method that cannot run (no ControlNet in
    the checkpoint, no joint-encoder checkpoint) is left out with a note saying why. `model` may be
    None only when `methods` is just "real"."""
    notes = notes if notes is not None else []
    for m in methods:
        if m not in METHODS:
            raise ConfigError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    if model is None:
        if set(methods) - {"real"}:
            raise ConfigError("generated methods need a motion model; pass --weights")
        return [MethodRun("real", None)] if methods else []
    runs = []

    def controlled(name: str, m: str, mm: MotionModel) -> MethodRun:
        """Full IKMo (`ikmo`), without the foot lock, or the ControlNet alone, named `name`, on `mm`."""
        if m == "no_footlock":
            return MethodRun(name, mm, foot_lock=FootLockConfig(enabled=False))
        if m == "no_optimization":
            return MethodRun(name, mm, optimization=mm.optimization.model_copy(update={"enabled": False}))
        return MethodRun(name, mm)

    for m in methods:
        needs_cn = m in ("ikmo", "no_footlock", "no_projection", "no_optimization")
        if needs_cn and not model.has_controlnet:
            notes.append(f"{m}: skipped, the checkpoint has no ControlNet (train the control stage)")
            continue
        if m == "real":
            runs.append(MethodRun("real", None))
        elif m in ("ikmo", "no_footlock", "no_optimization"):
            runs.append(controlled(m, m, model))
        elif m == "no_projection":  # stage 1 as gradient steps only (the paper's form)
            runs.append(MethodRun("no_projection", model, optimization=model.optimization.gradient_only()))
        elif m == "no_controlnet":
            runs.append(MethodRun("no_controlnet", model, use_controlnet=False))
        elif m in ("joint_encoder", "joint_no_optimization", "joint_no_projection"):
            if joint_model is None or not joint_model.has_controlnet:
                notes.append(f"{m}: skipped, no joint-encoder checkpoint with a ControlNet given (--joint-weights)")
                continue
            joint_opt = {"joint_encoder": None,
                         "joint_no_optimization": joint_model.optimization.model_copy(update={"enabled": False}),
                         "joint_no_projection": joint_model.optimization.gradient_only()}[m]
            runs.append(MethodRun(m, joint_model, optimization=joint_opt))
        elif m == "unconditioned":
            runs.append(MethodRun("unconditioned", model, use_control=False))
        elif m in BASELINE_METHODS:
            if baseline_model is None or not baseline_model.has_controlnet:
                notes.append(f"{m}: skipped, no baseline checkpoint with a ControlNet given (--baseline-weights)")
                continue
            runs.append(controlled(m, m.removeprefix("baseline_"), baseline_model))
    return runs
