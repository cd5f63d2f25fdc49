"""A picture of a rig mapping (`ikmo data inspect`): the source skeleton, rest pose and one frame,
with the 22 mapped joints marked (left blue, right red, midline dark; guessed joints ringed orange).

Orthographic views, y up, metres: front (looking at the character's face, so its left, +X, is on
the right of the picture) and side (from its left). PIL only.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from ikmo.motion_model.data.rigs import RigReport
from ikmo.motion_model.representation.skeleton import HUMANML3D_22

from .export_common import output_file

_BG = (246, 246, 242)
_BONE = (150, 150, 150)
_LEFT, _RIGHT, _MID, _GUESS = (40, 90, 200), (200, 50, 50), (40, 40, 40), (240, 140, 0)


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], pos: np.ndarray, parents: tuple[int, ...],
           mapped: np.ndarray, guessed: set[int], axis: int, title: str, span: tuple[np.ndarray, float]) -> None:
    """Draw one view. pos: (N, 3) source joints; mapped: (22, 3); axis: 0 (front: x) or 2 (side: z)."""
    x0, y0, x1, y1 = box
    centre, size = span
    scale = 0.85 * min(x1 - x0, y1 - y0 - 20) / size

    def to_px(p: np.ndarray) -> tuple[float, float]:
        return ((x0 + x1) / 2 + (p[axis] - centre[axis]) * scale, (y0 + y1 + 20) / 2 - (p[1] - centre[1]) * scale)

    draw.text((x0 + 6, y0 + 4), title, fill=(0, 0, 0))
    for j, p in enumerate(parents):
        if p >= 0:
            draw.line([to_px(pos[p]), to_px(pos[j])], fill=_BONE, width=1)
    for j, p in enumerate(HUMANML3D_22.parents):
        if p >= 0:
            draw.line([to_px(mapped[p]), to_px(mapped[j])], fill=(90, 90, 90), width=3)
    for j, name in enumerate(HUMANML3D_22.joint_names):
        colour = _LEFT if name.startswith("left") else _RIGHT if name.startswith("right") else _MID
        x, y = to_px(mapped[j])
        if j in guessed:
            draw.ellipse([x - 7, y - 7, x + 7, y + 7], outline=_GUESS, width=2)
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)


def rig_sheet(report: RigReport, cell: int = 360) -> Image.Image:
    """(width 4·cell, height cell + 40) image: rest front/side, frame front/side."""
    img = Image.new("RGB", (4 * cell, cell + 40), _BG)
    draw = ImageDraw.Draw(img)
    guessed = {HUMANML3D_22.joint_names.index(j) for j in report.rig.guessed}
    draw.text((8, cell + 14), f"{report.rig.family or report.rig.name} · map {report.rig.name} · unit {report.unit}"
              f" · {report.fps:g} fps · {report.frames} frames · orange rings: guessed joints", fill=(0, 0, 0))
    for k, (pos, mapped, what) in enumerate(((report.rest, report.rest22, "rest pose"),
                                              (report.pose, report.pose22, f"frame {report.frame}"))):
        both = np.concatenate([pos, mapped])
        centre = (both.max(0) + both.min(0)) / 2
        size = max(float(np.ptp(both, axis=0).max()), 1e-6)
        for v, (axis, view) in enumerate(((0, "front"), (2, "side"))):
            x0 = (2 * k + v) * cell
            _panel(draw, (x0, 0, x0 + cell, cell), pos, report.parents, mapped, guessed, axis,
                   f"{what}, {view}", (centre, size))
    return img


def write_rig_sheet(path: str | os.PathLike[str], report: RigReport) -> None:
    """Write `rig_sheet(report)` as a PNG, atomically."""
    with output_file(path) as tmp:
        rig_sheet(report).save(tmp, format="PNG")
