"""Overlays for a person to check a pose reading: BlazePose landmarks and the fitted skeleton drawn
over the photo, plus a side panel with the fitted 3D skeleton seen from the front and the side."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from ikmo.motion_model.fileio import atomic_path
from ikmo.motion_model.representation.skeleton import HUMANML3D_22

from .pose_estimation import LANDMARK_EDGES, Landmarks

_LEFT = (40, 200, 255)
_RIGHT = (255, 120, 40)
_MID = (240, 240, 240)


def _side_colour(name: str) -> tuple[int, int, int]:
    return _LEFT if name.startswith("left") else _RIGHT if name.startswith("right") else _MID


def _skeleton_panel(joints: np.ndarray, mask: np.ndarray, size: int, yaw_deg: float, title: str) -> Image.Image:
    """Orthographic view of joints (22, 3) (canonical frame) rotated by yaw about y; masked joints grey."""
    panel = Image.new("RGB", (size, size), (30, 30, 36))
    d = ImageDraw.Draw(panel)
    a = np.radians(yaw_deg)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    p = joints @ R.T
    # Looking at the body from its front (+Z): its left (+X) appears on the image's right.
    xy = np.stack([p[:, 0], -p[:, 1]], 1)
    scale = 0.8 * size / 2.0
    xy = xy * scale + np.array([size / 2, size / 2])
    for j, par in enumerate(HUMANML3D_22.parents):
        if par < 0:
            continue
        col = _side_colour(HUMANML3D_22.joint_names[j]) if mask[j] and mask[par] else (90, 90, 90)
        d.line([tuple(xy[par]), tuple(xy[j])], fill=col, width=3)
    for j in range(len(joints)):
        r = 3
        col = (255, 255, 255) if mask[j] else (90, 90, 90)
        d.ellipse([xy[j][0] - r, xy[j][1] - r, xy[j][0] + r, xy[j][1] + r], fill=col)
    d.text((6, 4), title, fill=(220, 220, 220))
    return panel


def skeleton_views(joints: np.ndarray, mask: np.ndarray, size: int = 384) -> Image.Image:
    """A fitted pose seen from its front and from its left side: (2·size, size) image.

    joints: (22, 3) canonical joints (metres, facing +Z); mask: (22,) bool, unseen joints grey.
    """
    out = Image.new("RGB", (2 * size, size), (0, 0, 0))
    out.paste(_skeleton_panel(joints, mask, size, 0.0, "fit: front"), (0, 0))
    out.paste(_skeleton_panel(joints, mask, size, -90.0, "fit: left side"), (size, 0))
    return out


def draw_overlay(image: np.ndarray, landmarks: Landmarks, joints: np.ndarray, mask: np.ndarray,
                 fitted_2d: np.ndarray | None = None, caption: str = "") -> Image.Image:
    """Compose the check image.

    image: (H, W, 3) uint8 photo; landmarks: BlazePose result on it; joints: (22, 3) canonical fitted
    joints (metres); mask: (22,) bool; fitted_2d: optional (22, 2) pixel positions of the fitted
    joints to draw over the photo. Returns a PIL image: photo with landmarks | front view | side view.
    """
    photo = Image.fromarray(image).convert("RGB")
    H, W = image.shape[:2]
    scale = 512 / max(H, W)
    if scale < 1:
        photo = photo.resize((round(W * scale), round(H * scale)))
    else:
        scale = 1.0
    d = ImageDraw.Draw(photo)
    pts = landmarks.image_xy * scale
    seen = landmarks.visibility >= 0.5
    for a, b in LANDMARK_EDGES:
        col = (0, 255, 120) if seen[a] and seen[b] else (120, 120, 120)
        d.line([tuple(pts[a]), tuple(pts[b])], fill=col, width=2)
    for i, pt in enumerate(pts):
        r = 3
        d.ellipse([pt[0] - r, pt[1] - r, pt[0] + r, pt[1] + r], fill=(0, 255, 120) if seen[i] else (150, 150, 150))
    if fitted_2d is not None:
        f2 = fitted_2d * scale
        for j, par in enumerate(HUMANML3D_22.parents):
            if par >= 0 and mask[j] and mask[par]:
                d.line([tuple(f2[par]), tuple(f2[j])], fill=_side_colour(HUMANML3D_22.joint_names[j]), width=2)
    side = photo.height
    out = Image.new("RGB", (photo.width + 2 * side, side), (0, 0, 0))
    out.paste(photo, (0, 0))
    out.paste(skeleton_views(joints, mask, side), (photo.width, 0))
    if caption:
        ImageDraw.Draw(out).text((6, side - 14), caption, fill=(255, 255, 0))
    return out


def save_overlay(path: str | os.PathLike[str], overlay: Image.Image) -> None:
    """Write the overlay PNG atomically."""
    with atomic_path(path) as tmp:
        overlay.save(tmp, format="PNG")
