"""Accuracy benchmark of the image → pose path (`ikmo bench pose`).

Ground truth: poses of the corpus test split (`<corpus>/new_joints/<id>.npy`, ids in `test.txt`;
until a corpus exists, the HumanML3D fixture clip). Each pose's joints are fitted with our own SMPL
fitter (full confidence) to get rotations; that posed mannequin *is* the ground truth: its
canonical FK joints are what the image shows. It is rendered under five views (front, ±45°, side,
front from 20° above) with random clothes, skin, hair, background and light, read back by the full
path (BlazePose → joint mapping → fit → canonical frame), and compared:

- detection rate: a KeyframePose came back (no PoseEstimationError);
- MPJPE (mm) after root alignment, in the canonical frame (both facing +Z), over the joints the
  prediction constrains (`joint_mask`);
- PA-MPJPE (mm) after a Procrustes similarity alignment;
- time per image (detect, fit), seconds; rendering is not counted.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ikmo.motion_model.errors import InputFileError, PoseEstimationError
from ikmo.motion_model.fileio import write_json

from .metrics import pa_mpjpe, root_aligned_mpjpe

log = logging.getLogger(__name__)

FIXTURE_JOINTS = (Path(os.environ.get("IKMO_SHARED", Path(__file__).resolve().parents[2] / "shared"))
                  / "fixtures" / "humanml3d" / "new_joints")
DEFAULT_CORPUS = Path("data/corpus")


@dataclass(frozen=True)
class View:
    name: str
    azimuth_deg: float
    elevation_deg: float


VIEWS = (View("front", 0, 3), View("left45", 45, 3), View("right45", -45, 3), View("side", 90, 3),
         View("elevated", 0, 20))


def load_gt_poses(corpus: Path | None, n_poses: int, seed: int = 0,
                  split: str = "test") -> tuple[list[np.ndarray], list[str], str]:
    """Draw `n_poses` (22, 3) joint frames from a corpus split (`<split>.txt`; or the fixture clip).

    The benchmark uses "test"; calibration and learned components use "train"/"val" only.

    Returns the poses, their ids ("clip:frame") and a description of the source.
    """
    rng = np.random.default_rng(seed)
    root = corpus if corpus is not None else (DEFAULT_CORPUS if (DEFAULT_CORPUS / "test.txt").is_file() else None)
    if root is not None:
        split_file = root / f"{split}.txt"
        if not split_file.is_file():
            raise InputFileError(f"{split_file} does not exist; give --corpus a directory with new_joints/ and "
                                 f"{split}.txt")
        ids = [s.strip() for s in split_file.read_text().splitlines() if s.strip()]
        ids = [i for i in ids if (root / "new_joints" / f"{i}.npy").is_file()]
        if not ids:
            raise InputFileError(f"no clip of {split_file} has a file in {root / 'new_joints'}; build the corpus first")
        desc = f"{root} ({split} split, {len(ids)} clips)"
    else:
        if not (FIXTURE_JOINTS / "012314.npy").is_file():
            raise InputFileError("no corpus (data/corpus) and no HumanML3D fixture; pass --corpus")
        root, ids = FIXTURE_JOINTS.parent, ["012314"]
        desc = "HumanML3D fixture clip 012314 (no corpus found)"
    poses, names = [], []
    cache: dict[str, np.ndarray] = {}
    for _ in range(n_poses):
        cid = ids[int(rng.integers(len(ids)))]
        if cid not in cache:
            cache[cid] = np.load(root / "new_joints" / f"{cid}.npy")
        clip = cache[cid]
        f = int(rng.integers(len(clip)))
        poses.append(clip[f].astype(np.float64))
        names.append(f"{cid}:{f}")
    return poses, names, desc


def run_bench(corpus: Path | None = None, n_poses: int = 50, out: Path | None = None, model_complexity: int = 1,
              seed: int = 0, views: tuple[View, ...] = VIEWS, size: int = 512,
              save_images: Path | None = None) -> dict:
    """Run the benchmark; return (and write to `out`) the report dict (see `format_table`)."""
    from PIL import Image

    from ikmo.tools.body_model import load_body_model
    from ikmo.tools.mannequin_render import Camera, random_appearance, render_pose
    from ikmo.tools.overlay import save_overlay
    from ikmo.tools.pose_estimation import LandmarkDetector
    from ikmo.tools.smpl_fit import JointTargets, canonicalize, fit_pose, image_to_pose

    model = load_body_model()
    rest = model.rest_joints[:22] - model.rest_joints[0]
    poses, names, desc = load_gt_poses(corpus, n_poses, seed)
    rng = np.random.default_rng(seed + 1)
    rows: list[dict] = []
    t_start = time.perf_counter()
    if save_images is not None:
        save_images.mkdir(parents=True, exist_ok=True)
    with LandmarkDetector(model_complexity) as det:
        for k, (joints, name) in enumerate(zip(poses, names, strict=True)):
            tgt = joints - joints[0]
            gt_fit = fit_pose(JointTargets(tgt, np.ones(22), np.ones(22, bool)), rest, iters=60)
            gt, go = canonicalize(gt_fit)
            for view in views:
                app = random_appearance(rng)
                img, _ = render_pose(model, go, gt_fit.body_pose, Camera(view.azimuth_deg, view.elevation_deg),
                                     (size, size), app)
                row: dict = {"pose": name, "view": view.name, "gt_fit_mm": gt_fit.error_m * 1000}
                try:
                    res = image_to_pose(img, detector=det, model=model, source=f"{name}/{view.name}",
                                        with_images=save_images is not None)
                except PoseEstimationError as e:
                    row.update(detected=False, error=str(e))
                    rows.append(row)
                    continue
                mask = np.asarray(res.keyframe.joint_mask)
                pred = res.keyframe.joints_array().astype(np.float64)
                row.update(detected=True, n_joints=int(mask.sum()),
                           mpjpe_mm=root_aligned_mpjpe(pred, gt, mask) * 1000,
                           pa_mpjpe_mm=pa_mpjpe(pred, gt, mask) * 1000,
                           detect_s=res.seconds["detect"], fit_s=res.seconds["fit"],
                           flips=sum("flipped" in n for n in res.keyframe.notes))
                rows.append(row)
                if save_images is not None:
                    stem = f"{k:03d}_{view.name}"
                    Image.fromarray(img).save(save_images / f"{stem}.png")
                    save_overlay(save_images / f"{stem}_overlay.png", res.overlay())
            log.info("pose %d/%d (%s) done", k + 1, len(poses), name)
    report = summarise(rows, views)
    report.update(source=desc, n_poses=len(poses), model_complexity=model_complexity, image_size=size,
                  seed=seed, wall_s=time.perf_counter() - t_start, rows=rows)
    if out is not None:
        write_json(out, report)
    return report


def summarise(rows: list[dict], views: tuple[View, ...] = VIEWS) -> dict:
    """Per-view and overall detection rate, MPJPE / PA-MPJPE (mean, median) in mm, time per image."""

    def stats(rs: list[dict]) -> dict:
        det = [r for r in rs if r.get("detected")]
        out = {"n": len(rs), "detection_rate": len(det) / max(len(rs), 1)}
        for key in ("mpjpe_mm", "pa_mpjpe_mm"):
            vals = np.array([r[key] for r in det]) if det else np.array([np.nan])
            out[key] = float(np.mean(vals))
            out[key.replace("_mm", "_median_mm")] = float(np.median(vals))
        for key in ("detect_s", "fit_s"):
            out[key] = float(np.mean([r[key] for r in det])) if det else float("nan")
        return out

    per_view = {v.name: stats([r for r in rows if r["view"] == v.name]) for v in views}
    return {"per_view": per_view, "overall": stats(rows)}


def format_table(report: dict) -> str:
    """The report as a fixed-width text table."""
    head = f"{'view':<10}{'n':>5}{'detect%':>9}{'MPJPE':>8}{'med':>7}{'PA-MPJPE':>10}{'med':>7}{'det s':>8}{'fit s':>8}"
    lines = [f"pose benchmark: {report.get('source', '')}", head, "-" * len(head)]
    for name, s in [*report["per_view"].items(), ("overall", report["overall"])]:
        lines.append(f"{name:<10}{s['n']:>5}{100 * s['detection_rate']:>8.1f}%{s['mpjpe_mm']:>8.1f}"
                     f"{s['mpjpe_median_mm']:>7.1f}{s['pa_mpjpe_mm']:>10.1f}{s['pa_mpjpe_median_mm']:>7.1f}"
                     f"{s['detect_s']:>8.3f}{s['fit_s']:>8.3f}")
    lines.append("errors in mm (root-aligned MPJPE, PA-MPJPE over the predicted joint mask); times per image")
    return "\n".join(lines)


__all__ = ["VIEWS", "View", "format_table", "load_gt_poses", "run_bench", "summarise"]
