"""The motion-generation tool: a `MotionSpec` in, a motion and its files and measured errors out.

`generate_motion(spec, out_dir)` validates the spec (`spec.check()`: a `ConstraintError` before
any sampling), samples with the motion model (stage 1 optimization + stage 2 ControlNet, as the
spec's options say), and writes into `out_dir`:

  joints.npy (T, 22, 3), features.npy (T−1, 263), motion.bvh, motion_smpl.npz, motion.glb, preview.mp4
  (through `tools.exports.write_motion_files`), spec.json, config.json, report.json.

report.json holds the measured constraint errors (trajectory error mean/max, keyframe MPJPE after
root alignment, metres), the foot skating ratio, timings per stage (seconds) and the sampler
settings. A valid but infeasible spec still returns its motion, with its (large) measured errors.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from ikmo.motion_model.constraints import MotionResult, MotionSpec
from ikmo.motion_model.fileio import write_json
from ikmo.motion_model.model.diffusion import OnStep
from ikmo.motion_model.model_config import FootLockConfig
from ikmo.motion_model.sampling import MotionModel

from .toolbox import ToolSettings

log = logging.getLogger(__name__)


def generate_motion(
    spec: MotionSpec,
    out_dir: str | Path,
    *,
    model: MotionModel | None = None,
    settings: ToolSettings | None = None,
    formats: tuple[str, ...] | None = None,
    on_step: OnStep | None = None,
) -> MotionResult:
    """Generate the motion of `spec` into `out_dir` and return the `MotionResult`.

    model: a loaded `MotionModel` (else `load_model(settings.weights, settings.device)`);
    settings: the tools' settings (any subclass: the whole resolved configuration is saved into
    config.json); its `diffusion_steps` / `guidance_scale` override the checkpoint's sampler
    defaults, and the spec's `options.guidance_scale` wins over both; `exact_projection: false` (in
    the settings or the spec's options) runs stage 1 as gradient steps only; the seed is the spec's
    `options.seed`. formats: subset of `tools.exports.ALL_FORMATS` (default all). Raises
    ConstraintError for an invalid spec.
    """
    settings = settings if settings is not None else ToolSettings()
    spec.check()  # before loading or sampling anything
    control = spec.to_control()
    prefix = _load_prefix(spec)
    timings: dict[str, float] = {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    from ikmo.motion_model.long_sampling import sample_long
    from ikmo.motion_model.sampling import load_model

    t0 = time.perf_counter()
    if model is None:
        model = load_model(settings.weights, settings.device)
    timings["load_s"] = time.perf_counter() - t0

    opts = spec.options
    opt_cfg = model.optimization.model_copy(update={"enabled": opts.use_optimization and model.optimization.enabled})
    if not (opts.exact_projection and settings.exact_projection):
        opt_cfg = opt_cfg.gradient_only()
    if opts.optimization_steps is not None:
        opt_cfg = opt_cfg.model_copy(update={"iterations": opts.optimization_steps})
    seed = opts.seed
    gs = opts.guidance_scale if opts.guidance_scale is not None else settings.guidance_scale
    steps = settings.diffusion_steps or model.diffusion.cfg.sample_steps
    gs_used = model.diffusion.cfg.guidance_scale if gs is None else gs

    t0 = time.perf_counter()
    # One window (≤ 9.8 s) is one `sample`; a longer motion is sampled in overlapping windows.
    motion = sample_long(model, spec.description.text, spec.n_frames, None if control.is_empty() else control,
                         seed=seed, steps=steps, guidance_scale=gs_used, optimization=opt_cfg,
                         use_controlnet=opts.use_controlnet, on_step=on_step,
                         timed_texts=spec.description.timed_texts(), prefix=prefix)
    timings["sample_s"] = time.perf_counter() - t0
    timings.update({f"sample_{k}": v for k, v in motion.timings.items()})

    from ikmo.motion_model.control.guidance import measured_errors
    from ikmo.motion_model.motion_metrics import foot_skating_ratio, seam_velocity_jump

    # Every file (joints, BVH, SMPL, preview) and every metric describe the same rigid-skeleton motion.
    t0 = time.perf_counter()
    joints = onto_rig(motion.joints, model.foot_lock, control.pose_mask.cpu().numpy(), prefix=prefix)
    rig_delta = float(np.linalg.norm(joints - motion.joints, axis=-1).mean())
    timings["rig_projection_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    metrics: dict[str, float] = dict(measured_errors(joints, control, opt_cfg.align_yaw))
    metrics["foot_skating_ratio"] = foot_skating_ratio(joints, fps=motion.fps)
    metrics["rig_projection_mean_m"] = rig_delta
    if motion.seams:  # a long motion: how its window hand-overs compare with its own changes of speed
        jump = seam_velocity_jump(joints, motion.seams, fps=motion.fps)
        metrics["seam_velocity_jump"], metrics["inside_velocity_jump"] = jump["seam_mean"], jump["inside_mean"]
        metrics["seam_jump_ratio"] = jump["ratio"]
    timings["metrics_s"] = time.perf_counter() - t0

    from ikmo.tools.exports import ALL_FORMATS, write_motion_files

    t0 = time.perf_counter()
    files = write_motion_files(joints, out, fps=motion.fps, spec=spec, formats=formats or ALL_FORMATS,
                               smpl_model_path=settings.smpl_model)
    timings["export_s"] = time.perf_counter() - t0

    sampler = {"seed": seed, "steps": steps, "guidance_scale": gs_used, "use_controlnet": opts.use_controlnet,
               "controlnet_available": model.has_controlnet, "optimization": opt_cfg.model_dump(),
               "foot_lock": model.foot_lock.model_dump(),
               "timed_texts": [tt.model_dump() for tt in spec.description.timed_texts()],
               "weights": model.meta.get("weights_dir"), "train": _train_summary(model.meta)}
    config = {"settings": settings.dump(), "sampler": sampler}
    files["spec"] = str(write_json(out / "spec.json", spec.model_dump(mode="json")))
    files["config"] = str(write_json(out / "config.json", config))
    json_metrics = {k: (None if math.isnan(v) else v) for k, v in metrics.items()}  # JSON has no NaN
    report = {"metrics": json_metrics, "timings_s": {k: round(v, 4) for k, v in timings.items()},
              "n_frames": spec.n_frames, "fps": motion.fps, "text": spec.description.text,
              "n_keyframes": len(spec.keyframes),
              "continues": None if spec.prefix is None else spec.prefix.model_dump(),
              "windows": [list(w) for w in motion.windows], "seams": motion.seams,
              "trajectory_frames": int(control.traj_mask.any(-1).sum()),
              "optimization_loss_first_last": motion.optimization_loss[:1] + motion.optimization_loss[-1:],
              "sampler": sampler}
    files["report"] = str(write_json(out / "report.json", report))
    log.info("motion written to %s (traj err %.3f m, keyframe MPJPE %.3f m, sampling %.2f s)", out,
             metrics["traj_err_mean"], metrics["keyframe_mpjpe"], timings["sample_s"])
    return MotionResult(files=files, metrics={k: float(v) for k, v in metrics.items()}, spec=spec, config=config)


def _load_prefix(spec: MotionSpec) -> np.ndarray | None:
    """(P, 22, 3) joints of the motion `spec` continues, checked against `spec.prefix`, or None."""
    if spec.prefix is None:
        return None
    from ikmo.motion_model.errors import ConstraintError

    from .export_common import load_joints

    joints = load_joints(spec.prefix.joints_path)
    if len(joints) != spec.prefix.n_frames:
        raise ConstraintError(f"the motion to continue, {spec.prefix.joints_path}, has {len(joints)} frames, not the "
                              f"{spec.prefix.n_frames} the spec says; give its joints.npy as it was written")
    return joints


def onto_rig(joints: np.ndarray, foot_lock: FootLockConfig, pose_mask: np.ndarray,
             prefix: np.ndarray | None = None) -> np.ndarray:
    """The sampler's joints as the user gets them: on the rigid skeleton, feet locked again.

    joints: (T, 22, 3) metres; pose_mask: (T, 22) the keyframe-constrained joints (the foot lock
    leaves them alone); prefix: (P, 22, 3) the motion these joints continue (`MotionSpec.prefix`),
    whose kept frames come back as delivered. Returns (T, 22, 3) float32.
    """
    from ikmo.motion_model.long_sampling import kept_prefix_frames

    from .rig_rotations import project_to_rig

    n_kept = 0 if prefix is None else kept_prefix_frames(len(prefix))
    # A continued motion takes the rig of the motion it continues: its kept frames come back as they
    # were, and one rest shape plays the whole file (the BVH reproduces every frame).
    out = project_to_rig(joints, rest_from=None if prefix is None else prefix[:n_kept])
    if foot_lock.enabled:
        # The rig's fixed bone lengths move the feet the sampler had locked (bundled weights, "walk
        # forward 3 meters, then bow": skating 0.06 before the rig, 0.40 after); lock them again on
        # the rigid legs (the IK keeps their lengths, so the motion stays on the rig).
        from ikmo.motion_model.control.footlock import lock_feet

        pinned = np.array(pose_mask, dtype=bool, copy=True)
        pinned[:n_kept] = True  # a continued motion's kept frames are not moved, nor its planted feet
        out = lock_feet(out, foot_lock, pinned)
    if prefix is not None:
        out[:n_kept] = prefix[:n_kept]  # as delivered (a lock reaching into them moved a few feet)
    return np.asarray(out, dtype=np.float32)


def _train_summary(meta: dict[str, Any]) -> dict[str, Any]:
    train = meta.get("train") or {}
    return {k: train[k] for k in ("stage", "step", "wall_s") if k in train}
