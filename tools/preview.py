"""Preview rendering of a 22-joint motion: MP4, GIF, single frames and contact sheets, headless.

Drawn with PIL (no OpenGL, no matplotlib, no system ffmpeg: MP4 goes through the ffmpeg binary of
imageio-ffmpeg) so that a 196-frame preview costs well under the generate job's budget.

What a frame shows, back to front: sky and floor, a floor grid (0.5 m), the optional target
trajectory (green dots, larger where constrained), the pelvis path on the floor (grey ahead, orange
travelled), keyframe markers on that path (magenta diamonds), the skeleton's shadow, keyframe
constraint poses as magenta ghosts (near their frames), the skeleton (left side blue, right side
red, midline dark; bones drawn far to near, thickness by depth), a timeline with keyframe ticks, and
a magenta frame border on keyframe frames.

Camera: a perspective pinhole camera at a fixed azimuth/elevation that follows the pelvis,
smoothed over time (Gaussian, σ = 0.5 s), so the figure stays framed however far it travels.
World: metres, y up, the floor at y = 0; azimuth 0 looks at the character's front at frame 0
(it faces +Z), positive azimuths move the camera towards its left (+X).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ikmo.motion_model.errors import InputFileError, MotionDataError
from ikmo.motion_model.representation.skeleton import FPS, HUMANML3D_22, Skeleton

from .export_common import check_joints, output_file

log = logging.getLogger(__name__)

_NEAR = 0.05  # m, near clipping plane of the camera

Colour = tuple[int, int, int]

LEFT = (52, 120, 230)
RIGHT = (225, 60, 60)
MIDDLE = (55, 55, 65)
GHOST = (215, 70, 215)
KEY = (200, 40, 200)
TRACE_DONE = (240, 140, 30)
TRACE_AHEAD = (150, 150, 160)
TARGET = (30, 170, 80)
SHADOW = (128, 130, 136)
GRID = (165, 168, 175)
FLOOR = (190, 193, 198)
SKY_TOP = (226, 232, 240)
SKY_BOTTOM = (246, 247, 250)
TEXT = (30, 30, 40)


@dataclass(frozen=True)
class PreviewOptions:
    """How a preview looks. Sizes in pixels, lengths in metres, angles in degrees."""

    width: int = 512
    height: int = 384
    fps: float = FPS
    azimuth_deg: float = 35.0
    elevation_deg: float = 14.0
    distance_m: float = 3.5
    fov_deg: float = 40.0
    look_at_height_m: float = 0.85
    follow_sigma_s: float = 0.5
    grid_step_m: float = 0.5
    grid_radius_m: float = 6.0
    bone_radius_m: float = 0.022
    joint_radius_m: float = 0.028
    ghost_window_s: float = 0.4
    show_hud: bool = True
    # x264 "ultrafast" at CRF 27 costs ~0.6 s of CPU for 196 frames (1.3 MB); "veryfast"/23 makes a
    # 2.6x smaller file for twice the CPU, over the generate job's budget.
    mp4_preset: str = "ultrafast"
    mp4_crf: int = 27

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 32 or self.width % 2 or self.height % 2:
            raise MotionDataError(f"preview size must be even and at least 32x32, got {self.width}x{self.height}")
        if not (0 < self.fov_deg < 170) or self.distance_m <= 0 or self.fps <= 0:
            raise MotionDataError("preview fov must lie in (0, 170) degrees, distance and fps must be positive")


@dataclass
class Overlay:
    """What to draw besides the motion.

    target_trajectory: (T', 3) metres, the requested pelvis path (T' need not equal T; frame i of
        it is drawn against frame i of the motion).
    target_mask: (T',) bool, constrained frames of the target (None: all).
    keyframe_frames: frame indices that carry a keyframe constraint.
    keyframe_poses: per keyframe, None or a (22, 3) root-relative pose in the canonical facing
        (+Z forward), drawn as a ghost where the motion model's Align puts it: turned to the
        motion's facing, on its pelvis (x/z from the target trajectory where that frame has one).
    keyframe_masks: per keyframe, None (all joints) or a (22,) bool mask of the constrained joints;
        the ghost draws only bones between constrained joints (an upper-body photo has no legs).
    """

    target_trajectory: np.ndarray | None = None
    target_mask: np.ndarray | None = None
    keyframe_frames: list[int] = field(default_factory=list)
    keyframe_poses: list[np.ndarray | None] = field(default_factory=list)
    keyframe_masks: list[np.ndarray | None] = field(default_factory=list)


class _Camera:
    """A pinhole camera translating along `eyes` (T, 3) with a fixed orientation."""

    def __init__(self, targets: np.ndarray, opt: PreviewOptions) -> None:
        az, el = math.radians(opt.azimuth_deg), math.radians(opt.elevation_deg)
        back = np.array([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])
        self.targets = targets
        self.eyes = targets + opt.distance_m * back
        self.forward = -back
        self.right = np.cross(self.forward, [0.0, 1.0, 0.0])
        self.right /= np.linalg.norm(self.right)
        self.up = np.cross(self.right, self.forward)
        self.focal = 0.5 * opt.height / math.tan(math.radians(opt.fov_deg) / 2)
        self.cx, self.cy = opt.width / 2, opt.height / 2
        self.basis = np.stack([self.right, self.up, self.forward], axis=1)  # (3, 3): world → (x, y, depth)

    def to_camera(self, points: np.ndarray, frame: int | np.ndarray) -> np.ndarray:
        """(..., 3) world points → (..., 3) camera (right, up, depth); `frame` broadcasts over '...'."""
        eye = self.eyes[frame]
        if np.ndim(frame):
            eye = eye.reshape(eye.shape[:1] + (1,) * (points.ndim - 2) + (3,))
        return (points - eye) @ self.basis

    def pixels(self, cam: np.ndarray) -> np.ndarray:
        """(..., 3) camera points with depth > 0 → (..., 2) pixel coordinates."""
        z = np.maximum(cam[..., 2], _NEAR)
        return np.stack([self.cx + self.focal * cam[..., 0] / z, self.cy - self.focal * cam[..., 1] / z], axis=-1)

    def horizon_row(self) -> float:
        # Points at infinity on the floor plane lie on the line y_cam / depth = forward.y / |forward_xz|.
        tilt = -self.forward[1] / math.hypot(self.forward[0], self.forward[2])
        return self.cy - self.focal * tilt


def _clip_segments(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip camera-space segments (N, 3) a→b to depth ≥ near; returns (a, b, keep)."""
    za, zb = a[:, 2], b[:, 2]
    keep = (za > _NEAR) | (zb > _NEAR)
    t = np.clip((_NEAR - za) / np.where(np.abs(zb - za) < 1e-12, 1e-12, zb - za), 0.0, 1.0)
    cut = a + (b - a) * t[:, None]
    a2 = np.where((za < _NEAR)[:, None], cut, a)
    b2 = np.where((zb < _NEAR)[:, None], cut, b)
    return a2, b2, keep


def _clip_to_box(a: np.ndarray, b: np.ndarray, w: float, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Liang-Barsky clip of pixel segments (N, 2) a→b to the image [0, w] × [0, h].

    PIL rasterises a line pixel by pixel even off the image, so a floor line that passes near the
    camera (thousands of pixels long once projected) would cost more than the rest of the frame.
    """
    d = b - a
    t0, t1 = np.zeros(len(a)), np.ones(len(a))
    for p, q in ((-d[:, 0], a[:, 0]), (d[:, 0], w - a[:, 0]), (-d[:, 1], a[:, 1]), (d[:, 1], h - a[:, 1])):
        parallel = np.abs(p) < 1e-12
        r = np.where(parallel, 0.0, q / np.where(parallel, 1.0, p))
        t0 = np.where(~parallel & (p < 0), np.maximum(t0, r), t0)
        t1 = np.where(~parallel & (p > 0), np.minimum(t1, r), t1)
        t1 = np.where(parallel & (q < 0), -1.0, t1)
    keep = t0 <= t1
    return a + d * t0[:, None], a + d * t1[:, None], keep


def _follow(path: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smoothed camera path (T, C), σ in frames, that keeps up with the motion at both ends.

    The ends are padded by point reflection (2·x_end − x mirrored), which continues a steady
    velocity; padding with the end value would make the camera lag a runner by metres at the end.
    """
    T = len(path)
    if T < 2 or sigma <= 0:
        return path
    k = min(T - 1, int(4 * sigma))
    padded = np.concatenate([2 * path[0] - path[k:0:-1], path, 2 * path[-1] - path[-2 : -k - 2 : -1]])
    return _gaussian_nearest(padded, sigma)[k : k + T]


def _gaussian_nearest(x: np.ndarray, sigma: float) -> np.ndarray:
    """scipy's `gaussian_filter1d(x, sigma, axis=0, mode="nearest")` (truncate 4σ) in numpy: (N, C) → (N, C).

    Importing scipy.ndimage costs 0.1–0.4 s of every `ikmo generate` for this one smoothing.
    """
    r = int(4.0 * sigma + 0.5)
    w = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    w /= w.sum()
    padded = np.pad(np.asarray(x, dtype=np.float64), [(r, r)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    n = len(x)
    return sum(wi * padded[i : i + n] for i, wi in enumerate(w))


def _side_colours(skeleton: Skeleton) -> list[Colour]:
    out = []
    for name in skeleton.joint_names:
        out.append(LEFT if name.startswith("left") else RIGHT if name.startswith("right") else MIDDLE)
    return out


def _ghost_poses(joints: np.ndarray, overlay: Overlay, skeleton: Skeleton) -> dict[int, np.ndarray]:
    """World-space ghosts {keyframe frame: (J, 3)}: the motion model's Align of each keyframe pose.

    That is `motion_model.control.guidance.align_keyframes` for one frame: the root-relative pose turned to
    the motion's facing yaw at that frame and placed on its pelvis, whose x/z are replaced by the
    target trajectory where the target constrains that frame; so the ghost is exactly what the
    pose loss compared the motion with.
    """
    out: dict[int, np.ndarray] = {}
    todo = [(f, p) for f, p in zip(overlay.keyframe_frames, overlay.keyframe_poses, strict=False) if p is not None]
    if not todo:
        return out
    import torch

    from ikmo.motion_model.control.align import facing_yaw, rotate_y

    T = joints.shape[0]
    for f, pose in todo:
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (skeleton.n_joints, 3) or not np.isfinite(pose).all():
            raise MotionDataError(f"keyframe pose at frame {f} must be finite ({skeleton.n_joints}, 3), "
                                  f"got {pose.shape}")
        f = int(np.clip(f, 0, T - 1))
        yaw = facing_yaw(torch.from_numpy(joints[f]))
        root = joints[f, 0].copy()
        tt, tm = overlay.target_trajectory, overlay.target_mask
        if tt is not None and tm is not None and f < len(tt) and tm[f]:
            root[[0, 2]] = tt[f, [0, 2]]
        out[f] = rotate_y(torch.from_numpy(pose - pose[0]), yaw).numpy() + root
    return out


class PreviewRenderer:
    """Renders frames of one motion; construct once, call `frame(i)` for each frame.

    joints: (T, J, 3) metres, y up, floor at y = 0.
    """

    def __init__(
        self,
        joints: np.ndarray,
        options: PreviewOptions | None = None,
        overlay: Overlay | None = None,
        skeleton: Skeleton = HUMANML3D_22,
    ) -> None:
        self.joints = check_joints(joints, skeleton)
        self.opt = opt = options or PreviewOptions()
        self.overlay = replace(overlay) if overlay is not None else Overlay()  # a copy: validation converts it
        self.skeleton = skeleton
        T = self.joints.shape[0]
        self.T = T
        pelvis = self.joints[:, 0]
        targets = np.stack([pelvis[:, 0], np.full(T, opt.look_at_height_m), pelvis[:, 2]], axis=1)
        targets[:, [0, 2]] = _follow(targets[:, [0, 2]], opt.follow_sigma_s * opt.fps)
        self.cam = _Camera(targets, opt)
        self.colours = _side_colours(skeleton)
        self.bones = [(p, c) for c, p in enumerate(skeleton.parents) if p >= 0]
        self.cam_joints = self.cam.to_camera(self.joints, np.arange(T))  # (T, J, 3)
        floor = self.joints.copy()
        floor[..., 1] = 0.0
        self.cam_shadow = self.cam.to_camera(floor, np.arange(T))
        trace = np.stack([pelvis[:, 0], np.full(T, 0.002), pelvis[:, 2]], axis=1)
        self.trace = trace
        self._validate_overlay()
        self.ghosts = _ghost_poses(self.joints, self.overlay, skeleton)
        self.key_frames = sorted({int(np.clip(f, 0, T - 1)) for f in self.overlay.keyframe_frames})
        self.font = ImageFont.load_default()
        self.background = self._background()

    def _validate_overlay(self) -> None:
        ov = self.overlay
        if ov.target_trajectory is not None:
            tt = np.asarray(ov.target_trajectory, dtype=np.float64)
            if tt.ndim != 2 or tt.shape[1] != 3 or len(tt) == 0 or not np.isfinite(tt).all():
                raise MotionDataError(f"target trajectory must be finite (T, 3) metres, got shape {tt.shape}")
            mask = np.ones(len(tt), bool) if ov.target_mask is None else np.asarray(ov.target_mask, bool)
            if mask.shape != (len(tt),):
                raise MotionDataError(f"target trajectory mask must have {len(tt)} entries, got {mask.shape}")
            ov.target_trajectory, ov.target_mask = tt, mask
        if ov.keyframe_poses and len(ov.keyframe_poses) != len(ov.keyframe_frames):
            raise MotionDataError("give one keyframe pose (or None) per keyframe frame")
        if ov.keyframe_masks and len(ov.keyframe_masks) != len(ov.keyframe_frames):
            raise MotionDataError("give one keyframe joint mask (or None) per keyframe frame")
        self.ghost_bones: dict[int, list[tuple[int, int]]] = {}
        for k, f in enumerate(ov.keyframe_frames):
            m = ov.keyframe_masks[k] if ov.keyframe_masks else None
            if m is None:
                continue
            m = np.asarray(m, bool)
            if m.shape != (self.skeleton.n_joints,):
                raise MotionDataError(f"keyframe joint mask must have {self.skeleton.n_joints} entries, got {m.shape}")
            self.ghost_bones[int(np.clip(f, 0, self.T - 1))] = [(p, c) for p, c in self.bones if m[p] and m[c]]

    def _background(self) -> Image.Image:
        w, h = self.opt.width, self.opt.height
        horizon = int(np.clip(self.cam.horizon_row(), 0, h))
        img = np.empty((h, w, 3), np.uint8)
        t = np.linspace(0.0, 1.0, max(horizon, 1))[:, None]
        sky = (1 - t) * np.array(SKY_TOP) + t * np.array(SKY_BOTTOM)
        img[:horizon] = sky[:horizon, None, :].astype(np.uint8)
        img[horizon:] = FLOOR
        out = Image.fromarray(img, "RGB")
        if self.opt.show_hud:  # the static part of the HUD is drawn once
            draw = ImageDraw.Draw(out)
            draw.text((w - 70, 6), "left", fill=LEFT, font=self.font)
            draw.text((w - 40, 6), "right", fill=RIGHT, font=self.font)
        return out

    # ------------------------------------------------------------------ drawing helpers

    def _polyline(self, draw: ImageDraw.ImageDraw, world: np.ndarray, i: int, colour: tuple, width: int) -> None:
        if len(world) < 2:
            return
        cam = self.cam.to_camera(world, i)
        w, h = self.opt.width, self.opt.height
        if (cam[:, 2] > _NEAR).all():  # the usual case: one call for the whole path
            px = self.cam.pixels(cam)
            if (np.abs(px - [w / 2, h / 2]) < [w, h]).all():
                draw.line(px.ravel().tolist(), fill=colour, width=width, joint="curve")
                return
        a, b, keep = _clip_segments(cam[:-1], cam[1:])
        pa, pb, keep2 = _clip_to_box(self.cam.pixels(a[keep]), self.cam.pixels(b[keep]), w, h)
        for s, e in zip(pa[keep2].tolist(), pb[keep2].tolist(), strict=True):
            draw.line([*s, *e], fill=colour, width=width)

    def _grid(self, draw: ImageDraw.ImageDraw, i: int) -> None:
        opt = self.opt
        cx, cz = self.cam.targets[i, 0], self.cam.targets[i, 2]  # around the figure, out to the horizon
        step, r = opt.grid_step_m, opt.grid_radius_m
        xs = np.arange(math.floor((cx - r) / step), math.ceil((cx + r) / step) + 1) * step
        zs = np.arange(math.floor((cz - r) / step), math.ceil((cz + r) / step) + 1) * step
        a = np.concatenate([np.stack([xs, 0 * xs, np.full_like(xs, zs[0])], 1),
                            np.stack([np.full_like(zs, xs[0]), 0 * zs, zs], 1)])
        b = np.concatenate([np.stack([xs, 0 * xs, np.full_like(xs, zs[-1])], 1),
                            np.stack([np.full_like(zs, xs[-1]), 0 * zs, zs], 1)])
        ca, cb, keep = _clip_segments(self.cam.to_camera(a, i), self.cam.to_camera(b, i))
        pa, pb, keep2 = _clip_to_box(self.cam.pixels(ca[keep]), self.cam.pixels(cb[keep]), opt.width, opt.height)
        for s, e in zip(pa[keep2].tolist(), pb[keep2].tolist(), strict=True):
            draw.line([*s, *e], fill=GRID, width=1)

    def _skeleton(self, draw: ImageDraw.ImageDraw, cam: np.ndarray, colours: Sequence[Colour],
                  scale: float = 1.0, dots: bool = True, bones: list[tuple[int, int]] | None = None) -> None:
        """Bones far to near, thickness by depth; `colours` has one colour per joint (bone = its child)."""
        cam_f = self.cam
        px = cam_f.pixels(cam)
        depth = np.maximum(cam[:, 2], _NEAR)
        order = sorted(self.bones if bones is None else bones, key=lambda pc: -(depth[pc[0]] + depth[pc[1]]))
        for p, c in order:
            if depth[p] <= _NEAR or depth[c] <= _NEAR:
                continue
            colour = colours[c]
            w = max(1, int(round(2 * scale * self.opt.bone_radius_m * cam_f.focal / (0.5 * (depth[p] + depth[c])))))
            draw.line([tuple(px[p]), tuple(px[c])], fill=colour, width=w)
            if dots:
                r = scale * self.opt.joint_radius_m * cam_f.focal / depth[c]
                x, y = px[c]
                draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        if dots and bones is None:
            r = scale * 1.2 * self.opt.joint_radius_m * cam_f.focal / depth[0]
            x, y = px[0]
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colours[0])

    def _diamond(self, draw: ImageDraw.ImageDraw, world: np.ndarray, i: int, size_m: float, fill: tuple | None,
                 outline: tuple) -> None:
        self._diamonds(draw, world[None], i, size_m, fill, outline)

    def _diamonds(self, draw: ImageDraw.ImageDraw, world: np.ndarray, i: int, size_m: float, fill: tuple | None,
                  outline: tuple) -> None:
        """Diamond markers at world points (N, 3), projected in one call: a 6 s target trajectory has
        120 markers per frame, and projecting them one by one cost ~0.5 s of every preview."""
        cam = self.cam.to_camera(world, i)
        cam = cam[cam[:, 2] > _NEAR]
        if not len(cam):
            return
        xy = self.cam.pixels(cam)
        rs = np.maximum(3.0, size_m * self.cam.focal / cam[:, 2])
        for (x, y), r in zip(xy.tolist(), rs.tolist(), strict=True):
            draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=fill, outline=outline)

    def _hud(self, draw: ImageDraw.ImageDraw, i: int) -> None:
        w, h = self.opt.width, self.opt.height
        draw.text((8, 6), f"t = {i / self.opt.fps:5.2f} s   frame {i + 1}/{self.T}", fill=TEXT, font=self.font)
        x0, x1, y = 8, w - 8, h - 10
        draw.line([(x0, y), (x1, y)], fill=TRACE_AHEAD, width=3)
        span = max(self.T - 1, 1)
        for f in self.key_frames:
            x = x0 + (x1 - x0) * f / span
            draw.rectangle([x - 2, y - 6, x + 2, y + 6], fill=KEY)
        x = x0 + (x1 - x0) * i / span
        draw.line([(x0, y), (x, y)], fill=TRACE_DONE, width=3)
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=TEXT)

    # ------------------------------------------------------------------ frames

    def frame(self, i: int) -> Image.Image:
        """The RGB image (height, width) of frame `i` (0-based)."""
        if not 0 <= i < self.T:
            raise MotionDataError(f"frame {i} is outside the motion's 0..{self.T - 1}")
        img = self.background.copy()
        draw = ImageDraw.Draw(img)
        self._grid(draw, i)
        ov = self.overlay
        if ov.target_trajectory is not None and ov.target_mask is not None:
            tt = ov.target_trajectory.copy()
            tt[:, 1] = 0.003
            self._polyline(draw, tt, i, TARGET, 1)
            self._diamonds(draw, tt[ov.target_mask], i, 0.02, TARGET, TARGET)
        self._polyline(draw, self.trace[i:], i, TRACE_AHEAD, 2)
        self._polyline(draw, self.trace[: i + 1], i, TRACE_DONE, 3)
        for f in self.key_frames:
            self._diamond(draw, self.trace[f], i, 0.06, KEY if f <= i else None, KEY)
        self._skeleton(draw, self.cam_shadow[i], [SHADOW] * self.skeleton.n_joints, dots=False)
        window = self.opt.ghost_window_s * self.opt.fps
        for f, ghost in self.ghosts.items():
            if abs(f - i) <= window:
                self._skeleton(draw, self.cam.to_camera(ghost, i), [GHOST] * self.skeleton.n_joints, scale=0.6,
                               bones=self.ghost_bones.get(f))
        self._skeleton(draw, self.cam_joints[i], self.colours)
        if self.opt.show_hud:
            self._hud(draw, i)
        if any(abs(f - i) <= 1 for f in self.key_frames):
            draw.rectangle([0, 0, self.opt.width - 1, self.opt.height - 1], outline=KEY, width=4)
        return img

    def frames(self) -> list[Image.Image]:
        return [self.frame(i) for i in range(self.T)]


def render_frame(joints: np.ndarray, frame: int, options: PreviewOptions | None = None,
                 overlay: Overlay | None = None) -> Image.Image:
    """One frame of a motion (T, 22, 3) metres as an RGB PIL image."""
    return PreviewRenderer(joints, options, overlay).frame(frame)


def contact_sheet(joints: np.ndarray, n: int = 6, *, cols: int | None = None, cell: tuple[int, int] = (320, 240),
                  overlay: Overlay | None = None, options: PreviewOptions | None = None) -> Image.Image:
    """`n` evenly spaced frames (first and last included) of a motion (T, 22, 3) in a grid image.

    Each cell is `cell` (width, height) pixels and carries its time; keyframe frames are included
    in place of their nearest evenly spaced frame so a critic sees them.
    """
    joints = check_joints(joints)
    if n < 1:
        raise MotionDataError(f"a contact sheet needs at least one frame, got n={n}")
    T = joints.shape[0]
    idx = np.unique(np.round(np.linspace(0, T - 1, min(n, T))).astype(int))
    for f in overlay.keyframe_frames if overlay else []:
        f = int(np.clip(f, 0, T - 1))
        if f not in idx:
            idx[np.argmin(np.abs(idx - f))] = f
    idx = np.unique(idx)
    base = options or PreviewOptions()
    opt = replace(base, width=cell[0] - cell[0] % 2, height=cell[1] - cell[1] % 2)
    renderer = PreviewRenderer(joints, opt, overlay)
    cols = cols or math.ceil(math.sqrt(len(idx) * 1.5 * cell[1] / cell[0]))
    cols = max(1, min(cols, len(idx)))
    rows = math.ceil(len(idx) / cols)
    sheet = Image.new("RGB", (cols * opt.width, rows * opt.height), (255, 255, 255))
    for k, f in enumerate(idx):
        sheet.paste(renderer.frame(int(f)), ((k % cols) * opt.width, (k // cols) * opt.height))
    return sheet


def write_preview(
    path: str | os.PathLike[str],
    joints: np.ndarray,
    *,
    options: PreviewOptions | None = None,
    overlay: Overlay | None = None,
    gif_scale: float = 1.0,
) -> Path:
    """Render the motion (T, 22, 3) metres to `path`: `.mp4` (H.264, yuv420p) or `.gif`, atomically.

    `gif_scale` shrinks GIF frames (GIFs are large); MP4s use the options' size.
    """
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise InputFileError(f"preview output {out} must end in .mp4 or .gif")
    renderer = PreviewRenderer(joints, options, overlay)
    with output_file(out) as tmp:
        if suffix == ".mp4":
            _write_mp4(tmp, renderer)
        else:
            _write_gif(tmp, renderer, gif_scale)
    log.info("wrote %s: %d frames at %g fps", out, renderer.T, renderer.opt.fps)
    return out


def _write_mp4(path: Path, renderer: PreviewRenderer) -> None:
    import imageio_ffmpeg

    opt = renderer.opt
    writer = imageio_ffmpeg.write_frames(
        str(path), (opt.width, opt.height), fps=opt.fps, codec="libx264", pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p", macro_block_size=1, ffmpeg_log_level="error", quality=None,
        output_params=["-preset", opt.mp4_preset, "-crf", str(opt.mp4_crf), "-movflags", "+faststart"],
    )
    writer.send(None)
    try:
        for i in range(renderer.T):
            writer.send(renderer.frame(i).tobytes())
    finally:
        writer.close()


def _gif_palette() -> Image.Image:
    named = [LEFT, RIGHT, MIDDLE, GHOST, KEY, TRACE_DONE, TRACE_AHEAD, TARGET, SHADOW, GRID, FLOOR, TEXT,
             (255, 255, 255), (0, 0, 0)]
    t = np.linspace(0.0, 1.0, 48)[:, None]
    sky = ((1 - t) * np.array(SKY_TOP) + t * np.array(SKY_BOTTOM)).round().astype(int)
    # Blends of each drawing colour with the floor and sky, for the edges a downscaled GIF gets.
    blends = [tuple(int(round(a * c + (1 - a) * b)) for c, b in zip(col, bg, strict=True))
              for col in named[:12] for bg in (FLOOR, SKY_BOTTOM) for a in (0.33, 0.66)]
    colours = named + [tuple(c) for c in sky] + blends
    flat = [v for c in colours[:256] for v in c]
    pal = Image.new("P", (1, 1))
    pal.putpalette(flat + flat[:3] * (256 - len(flat) // 3))
    return pal


def _write_gif(path: Path, renderer: PreviewRenderer, scale: float) -> None:
    if not 0.1 <= scale <= 1.0:
        raise MotionDataError(f"gif_scale must lie in [0.1, 1], got {scale}")
    size = (max(2, int(renderer.opt.width * scale)), max(2, int(renderer.opt.height * scale)))
    # One fixed palette (the drawing colours and the sky ramp): fast, and no flicker between frames.
    palette = _gif_palette()
    frames = []
    for i in range(renderer.T):
        img = renderer.frame(i)
        if scale != 1.0:
            img = img.resize(size, Image.Resampling.BILINEAR)
        frames.append(img.quantize(palette=palette, dither=Image.Dither.NONE))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(round(1000 / renderer.opt.fps)),
                   loop=0, optimize=False, disposal=1)
