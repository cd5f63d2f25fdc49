"""Render the agent evaluation's keyframe photos with known ground truth (eval/cases/agents/photos/).

Poses come from the corpus test split (`data/corpus`, `ikmo data build`; without one, the HumanML3D
fixture clip), drawn as `ikmo bench pose` draws them (`eval.bench_pose.load_gt_poses`). Each pose is
fitted with our SMPL fitter to get rotations; that posed mannequin is the truth: its canonical FK
joints (22, 3), pelvis at the origin, facing +Z, are stored beside each photo as `<stem>.npy`. Views:
front, ±45°, from 20° above, and the upper body (the front view cropped below the hips).
`index.json` lists each photo's pose id, view and crop. The committed files are what CI uses:

    python scripts/make_agent_case_photos.py [--corpus data/corpus] [--n-poses 6] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "eval" / "cases" / "agents" / "photos"
log = logging.getLogger("make_agent_case_photos")
VIEWS = {"front": (0.0, 3.0), "left45": (45.0, 3.0), "right45": (-45.0, 3.0), "elevated": (0.0, 20.0)}


def crop_upper(img: np.ndarray, keep: float = 0.52) -> np.ndarray:
    """The top `keep` of the body's bounding box (head to below the hips), with a small margin."""
    bg = img[0, 0].astype(int)
    body = np.abs(img.astype(int) - bg).sum(-1) > 30
    rows, cols = np.where(body.any(1))[0], np.where(body.any(0))[0]
    top, bottom = rows[0], rows[-1]
    cut = int(top + keep * (bottom - top))
    m = 12
    return img[max(top - m, 0):cut, max(cols[0] - m, 0):cols[-1] + m + 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    ap.add_argument("--n-poses", type=int, default=6)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--size", type=int, default=384)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from ikmo.eval.bench_pose import load_gt_poses
    from ikmo.tools.body_model import load_body_model
    from ikmo.tools.mannequin_render import Camera, random_appearance, render_pose
    from ikmo.tools.smpl_fit import JointTargets, canonicalize, fit_pose

    corpus = args.corpus if (args.corpus / "test.txt").is_file() else None
    poses, names, source = load_gt_poses(corpus, args.n_poses, args.seed, split="test")
    model = load_body_model()
    rest = model.rest_joints[:22] - model.rest_joints[0]
    rng = np.random.default_rng(args.seed)
    OUT.mkdir(parents=True, exist_ok=True)
    index = {"source": source, "seed": args.seed, "photos": []}
    for k, (joints, name) in enumerate(zip(poses, names, strict=True)):
        tgt = joints - joints[0]
        fit = fit_pose(JointTargets(tgt, np.ones(22), np.ones(22, bool)), rest, iters=60)
        truth, go = canonicalize(fit)
        app = random_appearance(rng)
        views = ["front", "left45", "upper"] + (["right45", "elevated"] if k < 2 else [])
        for view in views:
            az, el = VIEWS["front" if view == "upper" else view]
            img, _ = render_pose(model, go, fit.body_pose, Camera(az, el), (args.size, args.size), app)
            if view == "upper":
                img = crop_upper(img)
            stem = f"p{k}_{view}"
            Image.fromarray(img).save(OUT / f"{stem}.png", optimize=True)
            np.save(OUT / f"{stem}.npy", truth.astype(np.float32))
            index["photos"].append({"photo": f"{stem}.png", "truth": f"{stem}.npy", "pose": name, "view": view,
                                    "joints": "upper" if view == "upper" else "all",
                                    "fit_error_mm": round(fit.error_m * 1000, 1)})
    (OUT / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    log.info("%d photos in %s from %s", len(index["photos"]), OUT, source)


if __name__ == "__main__":
    main()
