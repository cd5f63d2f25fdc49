"""Learn the landmark → joint correction (`tools/assets/landmark_regressor.npz`) from rendered poses.

Two steps (both deterministic for a given seed):

1. `render`: draw poses from the corpus *train* and *val* splits (never test: the pose benchmark
   uses it), fit the mannequin to each (the ground truth), render it from random views (azimuth
   uniform in ±100°, elevation uniform in [-5°, 25°], random clothes and light), run BlazePose and
   cache landmarks + ground-truth canonical joints to `runs/landmark_regressor/<split>.npz`.
2. `fit`: ridge regression of the residual (true canonical joints − the hand-made mapping's joints)
   on `tools.smpl_fit.regressor_features`; λ chosen on the val split; writes the asset.

    python scripts/make_landmark_regressor.py render --split train --n-poses 400
    python scripts/make_landmark_regressor.py render --split train --n-poses 400 --seed 2 --part b
    python scripts/make_landmark_regressor.py render --split val --n-poses 100
    python scripts/make_landmark_regressor.py fit
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger("make_landmark_regressor")
CACHE = Path("runs/landmark_regressor")
ASSET = Path(__file__).resolve().parents[1] / "tools" / "assets" / "landmark_regressor.npz"


def render(split: str, n_poses: int, views_per_pose: int, seed: int, corpus: Path, part: str = "") -> None:
    from ikmo.eval.bench_pose import load_gt_poses
    from ikmo.motion_model.errors import PoseEstimationError
    from ikmo.motion_model.fileio import atomic_path
    from ikmo.tools.body_model import load_body_model
    from ikmo.tools.mannequin_render import Camera, random_appearance, render_pose
    from ikmo.tools.pose_estimation import LandmarkDetector
    from ikmo.tools.smpl_fit import JointTargets, canonicalize, fit_pose

    model = load_body_model()
    rest = model.rest_joints[:22] - model.rest_joints[0]
    poses, names, desc = load_gt_poses(corpus, n_poses, seed, split=split)
    log.info("%s: %d poses x %d views", desc, n_poses, views_per_pose)
    rng = np.random.default_rng(seed + 7)
    rec: dict[str, list] = {k: [] for k in ("world", "image_xy", "visibility", "image_size", "gt", "azimuth",
                                            "elevation", "pose")}
    t0 = time.perf_counter()
    out = CACHE / f"{split}{part}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in rec.items()})

    with LandmarkDetector(1) as det:
        for k, (joints, name) in enumerate(zip(poses, names, strict=True)):
            gt_fit = fit_pose(JointTargets(joints - joints[0], np.ones(22), np.ones(22, bool)), rest, iters=60)
            gt, go = canonicalize(gt_fit)
            for _ in range(views_per_pose):
                az, el = float(rng.uniform(-100, 100)), float(rng.uniform(-5, 25))
                img, _ = render_pose(model, go, gt_fit.body_pose, Camera(az, el), (512, 512), random_appearance(rng))
                try:
                    lm = det.detect(img, source=name)
                except PoseEstimationError:
                    continue
                for key, val in (("world", lm.world), ("image_xy", lm.image_xy), ("visibility", lm.visibility),
                                 ("image_size", lm.image_size), ("gt", gt), ("azimuth", az), ("elevation", el),
                                 ("pose", name)):
                    rec[key].append(val)
            if (k + 1) % 25 == 0:
                save()
                log.info("%d/%d poses, %d samples, %.0f s", k + 1, n_poses, len(rec["gt"]), time.perf_counter() - t0)
    save()
    log.info("wrote %s (%d samples)", out, len(rec["gt"]))


def _mirror(z: dict) -> dict:
    """The cache seen in a mirror: image x flipped, left/right landmarks and joints swapped (doubles the
    training set; BlazePose's errors are left/right symmetric on average)."""
    from ikmo.motion_model.representation.skeleton import HUMANML3D_22
    from ikmo.tools.pose_estimation import LANDMARK_NAMES, LM

    def other(n: str) -> str:
        return n.replace("left", "@").replace("right", "left").replace("@", "right")

    lm_map = np.array([LM[other(n)] for n in LANDMARK_NAMES])
    j_map = np.array(HUMANML3D_22.mirror_map)
    out = dict(z)
    out["world"] = z["world"][:, lm_map] * np.array([-1.0, 1.0, 1.0], np.float32)
    xy = z["image_xy"][:, lm_map].copy()
    xy[..., 0] = z["image_size"][:, None, 1] - xy[..., 0]
    out["image_xy"] = xy
    out["visibility"] = z["visibility"][:, lm_map]
    out["gt"] = z["gt"][:, j_map] * np.array([-1.0, 1.0, 1.0])
    out["azimuth"] = -z["azimuth"]
    return out


def _dataset(split: str, mirror: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Features (n, F), residual targets (n, 66) and hand-mapped facing-frame joints (n, 22, 3) of a cache."""
    from ikmo.tools.body_model import load_body_model
    from ikmo.tools.pose_estimation import Landmarks
    from ikmo.tools.smpl_fit import landmarks_to_joints, regressor_features

    parts = sorted(CACHE.glob(f"{split}*.npz"))
    if not parts:
        raise SystemExit(f"no {CACHE}/{split}*.npz; run the render step first")
    loaded = [dict(np.load(p)) for p in parts]
    z = {k: np.concatenate([d[k] for d in loaded]) for k in loaded[0]}
    if mirror:
        m = _mirror(z)
        z = {k: np.concatenate([z[k], m[k]]) for k in z}
    model = load_body_model()
    rest = model.rest_joints[:22] - model.rest_joints[0]
    X, Y, Pf, keep = [], [], [], []
    for i in range(len(z["gt"])):
        lm = Landmarks(world=z["world"][i], image_xy=z["image_xy"][i], visibility=z["visibility"][i],
                       presence=np.ones(33, np.float32), image_size=tuple(int(v) for v in z["image_size"][i]))
        try:
            t = landmarks_to_joints(lm, rest, regressor=None)
        except Exception:  # noqa: BLE001 - no shoulders: not a training sample
            continue
        if not t.mask[[1, 2]].all():
            continue
        W = lm.world_yup().astype(np.float64) * t.scale - t.origin
        f, Ry = regressor_features(t.points, W, lm.image_xy, lm.visibility)
        p = t.points @ Ry.T
        X.append(f)
        Y.append((z["gt"][i] - z["gt"][i][0] - p).ravel())
        Pf.append(p)
        keep.append(i)
    info = {k: z[k][keep] for k in ("azimuth", "elevation", "gt")}
    return np.array(X), np.array(Y), np.array(Pf), info


def _mpjpe_mm(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.linalg.norm((pred - pred[:, :1]) - (gt - gt[:, :1]), axis=-1).mean() * 1000)


def fit(out: Path) -> None:
    from ikmo.motion_model.fileio import atomic_path

    Xtr, Ytr, Ptr, itr = _dataset("train", mirror=True)
    Xva, Yva, Pva, iva = _dataset("val")
    log.info("train %d samples, val %d, %d features", len(Xtr), len(Xva), Xtr.shape[1])
    mean = Xtr.mean(0)
    std = Xtr.std(0)
    std[std < 1e-6] = 1.0
    A = (Xtr - mean) / std
    B = (Xva - mean) / std
    bias = Ytr.mean(0)
    G = A.T @ A
    rhs = A.T @ (Ytr - bias)
    log.info("val joint MPJPE of the hand-made mapping: %.1f mm (train %.1f)",
             _mpjpe_mm(Pva, iva["gt"]), _mpjpe_mm(Ptr, itr["gt"]))
    best = None
    for lam in (1, 3, 10, 30, 100, 300, 1000, 3000):
        Wt = np.linalg.solve(G + lam * np.eye(len(G)), rhs)
        pred = Pva + (B @ Wt + bias).reshape(-1, 22, 3)
        err = _mpjpe_mm(pred, iva["gt"])
        log.info("lambda %g: val joint MPJPE %.1f mm", lam, err)
        if best is None or err < best[0]:
            best = (err, lam, Wt)
    assert best is not None
    err, lam, Wt = best
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, weight=Wt.astype(np.float32), mean=mean.astype(np.float32),
                            std=std.astype(np.float32), bias=bias.astype(np.float32), lam=lam,
                            n_train=len(Xtr), val_mpjpe_mm=err)
    log.info("wrote %s (lambda %g, val joint MPJPE %.1f mm, %.0f kB)", out, lam, err, out.stat().st_size / 1e3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render")
    r.add_argument("--split", default="train", choices=("train", "val"))
    r.add_argument("--n-poses", type=int, default=400)
    r.add_argument("--views", type=int, default=4)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    r.add_argument("--part", default="", help="suffix of the cache file (several renders per split add up)")
    f = sub.add_parser("fit")
    f.add_argument("--out", type=Path, default=ASSET)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    if args.cmd == "render":
        render(args.split, args.n_poses, args.views, args.seed, args.corpus, args.part)
    else:
        fit(args.out)


if __name__ == "__main__":
    main()
