"""Render the example keyframe photos in `examples/keyframes/` with the mannequin renderer.

Poses are written down as SMPL axis-angles (relative to the T-pose; body_pose index = joint − 1),
so the examples need no data. Deterministic. Usage: python scripts/make_keyframe_examples.py
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

import numpy as np
from PIL import Image

from ikmo.motion_model.fileio import atomic_path
from ikmo.tools.body_model import load_body_model
from ikmo.tools.mannequin_render import Appearance, Camera, render_pose

log = logging.getLogger("make_keyframe_examples")
OUT = Path(__file__).resolve().parents[1] / "examples" / "keyframes"
H = math.pi / 2


def _pose(**joints: tuple[float, float, float]) -> np.ndarray:
    from ikmo.motion_model.representation.skeleton import HUMANML3D_22

    bp = np.zeros((21, 3))
    for name, aa in joints.items():
        bp[HUMANML3D_22.index(name) - 1] = aa
    return bp


POSES: dict[str, tuple[np.ndarray, float]] = {
    # name: (body_pose (21, 3), camera azimuth in degrees)
    "arms_raised": (_pose(left_shoulder=(0, 0, 1.25), right_shoulder=(0, 0, -1.25)), 0.0),
    "lunge": (_pose(left_hip=(-1.25, 0, 0.05), left_knee=(1.35, 0, 0), right_hip=(0.55, 0, -0.05),
                    right_knee=(0.9, 0, 0), left_ankle=(-0.1, 0, 0), right_ankle=(0.3, 0, 0),
                    left_shoulder=(0, 0, -1.2), right_shoulder=(0, 0, 1.2), spine1=(0.15, 0, 0)), 60.0),
    "waving": (_pose(right_shoulder=(-H, 0, -0.15), right_elbow=(0, 1.45, 0), left_shoulder=(0, 0, -1.25),
                     left_elbow=(0, -0.3, 0)), 0.0),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = load_body_model()
    base = Appearance()
    shirts = {"arms_raised": (0.75, 0.2, 0.2), "lunge": (0.2, 0.55, 0.3), "waving": (0.9, 0.75, 0.25)}
    for name, (bp, az) in POSES.items():
        app = Appearance(colors={**base.colors, "shirt": shirts[name]})
        img, _ = render_pose(model, np.zeros(3), bp, Camera(az, 5), (args.size, args.size), app, supersample=2)
        path = args.out / f"{name}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(img).save(tmp, format="PNG", optimize=True)
        log.info("wrote %s", path)


if __name__ == "__main__":
    main()
