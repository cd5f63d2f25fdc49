"""Headless mannequin renderer: a posed SMPL-format body (smplx LBS) seen from an orbiting camera,
rasterised by a vectorised torch z-buffer with Lambert shading. Pip-only, no OpenGL.

It makes the test images, the pose-benchmark images and stills of results. World frame: metres,
y up, the body faces +Z (azimuth 0 = camera in front of the body), its left is +X (azimuth +90 =
camera on the body's left side). Images are (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .body_model import PART, PART_NAMES, BodyModel

log = logging.getLogger(__name__)

_BUCKETS = (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


def _vec3(v: np.ndarray) -> tuple[float, float, float]:
    """A (3,) array as a tuple of Python floats (what the dataclasses below hold)."""
    x, y, z = (float(c) for c in v)
    return (x, y, z)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera orbiting `look_at`.

    azimuth_deg: around y, 0 = in front of the body (+Z side), +90 = on its left (+X side).
    elevation_deg: above the horizon (positive looks down on the body).
    distance_m: from `look_at`; None = far enough for the body to fill `fill` of the image height.
    fov_deg: vertical field of view.
    look_at: (3,) world point at the image centre; None = the centre of the body's bounding box.
    """

    azimuth_deg: float = 0.0
    elevation_deg: float = 0.0
    distance_m: float | None = None
    fov_deg: float = 35.0
    look_at: tuple[float, float, float] | None = None
    fill: float = 0.82

    def resolve(self, vertices: np.ndarray) -> Camera:
        """Fill in look_at and distance from the posed vertices (V, 3)."""
        lo, hi = vertices.min(0), vertices.max(0)
        centre = _vec3((lo + hi) / 2) if self.look_at is None else self.look_at
        dist = self.distance_m
        if dist is None:
            radius = 0.5 * float(np.linalg.norm(hi - lo))
            dist = radius / (self.fill * math.tan(math.radians(self.fov_deg) / 2))
        return replace(self, look_at=centre, distance_m=dist)

    def pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(eye (3,), R (3, 3)) with rows right, up, forward of the camera in world coordinates."""
        if self.look_at is None or self.distance_m is None:
            raise ValueError("resolve() the camera first")
        az, el = math.radians(self.azimuth_deg), math.radians(self.elevation_deg)
        target = np.asarray(self.look_at, dtype=np.float64)
        eye = target + self.distance_m * np.array([math.sin(az) * math.cos(el), math.sin(el),
                                                   math.cos(az) * math.cos(el)])
        fwd = (target - eye) / np.linalg.norm(target - eye)
        right = np.cross(fwd, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, fwd)
        return eye, np.stack([right, up, fwd])

    def project(self, points: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) → pixel coordinates (N, 2) (x right, y down) and depth (N,) metres."""
        H, W = size
        eye, R = self.pose()
        pc = (np.asarray(points, np.float64) - eye) @ R.T
        f = (H / 2) / math.tan(math.radians(self.fov_deg) / 2)
        z = pc[:, 2]
        uv = np.stack([W / 2 + f * pc[:, 0] / z, H / 2 - f * pc[:, 1] / z], 1)
        return uv, z


@dataclass(frozen=True)
class Appearance:
    """Colours (RGB in [0, 1]) and lighting of a rendering."""

    colors: dict[str, tuple[float, float, float]] = field(default_factory=lambda: {
        "skin": (0.87, 0.68, 0.55), "shirt": (0.20, 0.35, 0.65), "trousers": (0.18, 0.18, 0.22),
        "shoes": (0.12, 0.10, 0.09), "hair": (0.20, 0.13, 0.08), "eye_white": (0.95, 0.95, 0.93),
        "pupil": (0.08, 0.06, 0.05), "brow": (0.15, 0.10, 0.07), "lips": (0.70, 0.38, 0.38),
    })
    background_top: tuple[float, float, float] = (0.85, 0.87, 0.90)
    background_bottom: tuple[float, float, float] = (0.62, 0.62, 0.60)
    light_dir: tuple[float, float, float] = (-0.4, 0.6, 0.7)  # camera frame: x right, y up, z to the viewer
    ambient: float = 0.38
    diffuse: float = 0.70

    def vertex_colors(self, vertex_part: np.ndarray) -> np.ndarray:
        table = np.array([self.colors[n] for n in PART_NAMES], dtype=np.float32)
        return table[vertex_part]


def random_appearance(rng: np.random.Generator) -> Appearance:
    """Varied but plausible skin tones, clothes, backgrounds and light."""
    skins = [(0.93, 0.76, 0.64), (0.87, 0.68, 0.55), (0.76, 0.57, 0.42), (0.58, 0.40, 0.28), (0.40, 0.27, 0.19)]
    hairs = [(0.08, 0.06, 0.05), (0.25, 0.16, 0.09), (0.55, 0.40, 0.22), (0.35, 0.33, 0.32)]
    base = Appearance()
    colors = dict(base.colors)
    colors["skin"] = skins[rng.integers(len(skins))]
    colors["hair"] = hairs[rng.integers(len(hairs))]
    colors["shirt"] = _vec3(rng.uniform(0.1, 0.9, 3))
    colors["trousers"] = _vec3(rng.uniform(0.08, 0.6, 3))
    colors["shoes"] = _vec3(rng.uniform(0.05, 0.4, 3))
    top = rng.uniform(0.55, 0.95, 3)
    bottom = top * rng.uniform(0.6, 0.9)
    light = (float(rng.uniform(-0.8, 0.8)), float(rng.uniform(0.2, 0.9)), 0.8)
    return replace(base, colors=colors, background_top=_vec3(top), background_bottom=_vec3(bottom),
                   light_dir=light, ambient=float(rng.uniform(0.3, 0.45)))


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (V, 3) of a triangle mesh."""
    tri = vertices[faces]
    fn = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    n = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), fn.repeat_interleave(3, dim=0))
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def rasterize(uv: torch.Tensor, depth: torch.Tensor, faces: torch.Tensor, size: tuple[int, int]
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Z-buffer rasterisation at pixel centres.

    uv: (V, 2) pixel coordinates; depth: (V,) camera depth (> 0); faces: (F, 3) long.
    Returns face_id (H, W) long (-1 = background) and perspective-correct barycentrics (H, W, 3).
    """
    H, W = size
    tri_uv = uv[faces]  # (F, 3, 2)
    tri_z = depth[faces]
    lo = torch.floor(tri_uv.min(1).values - 0.5).clamp_min(0).long() + 0  # (F, 2)
    hi = torch.ceil(tri_uv.max(1).values - 0.5).long()
    hi[:, 0].clamp_(max=W - 1)
    hi[:, 1].clamp_(max=H - 1)
    ext = (hi - lo + 1).max(1).values
    valid = (ext > 0) & (tri_z.min(1).values > 1e-3)
    pix_all, z_all, f_all, b_all = [], [], [], []
    prev = 0
    for S in _BUCKETS:
        sel = torch.nonzero(valid & (ext > prev) & (ext <= S)).flatten()
        prev = S
        if sel.numel() == 0:
            continue
        # Bound the candidate count of one pass: big buckets go in slices.
        step = max(1, 2_000_000 // (S * S))
        for s0 in range(0, sel.numel(), step):
            idx = sel[s0:s0 + step]
            g = torch.arange(S)
            px = lo[idx, 0, None, None] + g[None, None, :]  # (n, 1, S) → columns
            py = lo[idx, 1, None, None] + g[None, :, None]  # (n, S, 1) → rows
            px, py = torch.broadcast_to(px, (len(idx), S, S)), torch.broadcast_to(py, (len(idx), S, S))
            cx, cy = px + 0.5, py + 0.5
            a, b, c = tri_uv[idx, 0], tri_uv[idx, 1], tri_uv[idx, 2]
            area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
            ok_area = area.abs() > 1e-9
            inv = torch.where(ok_area, 1.0 / area, torch.zeros_like(area))[:, None, None]
            w0 = ((b[:, 0, None, None] - cx) * (c[:, 1, None, None] - cy)
                  - (b[:, 1, None, None] - cy) * (c[:, 0, None, None] - cx)) * inv
            w1 = ((c[:, 0, None, None] - cx) * (a[:, 1, None, None] - cy)
                  - (c[:, 1, None, None] - cy) * (a[:, 0, None, None] - cx)) * inv
            w2 = 1.0 - w0 - w1
            inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0) & ok_area[:, None, None]
            inside &= (px <= hi[idx, 0, None, None]) & (py <= hi[idx, 1, None, None])
            n, r, q = torch.nonzero(inside, as_tuple=True)
            if n.numel() == 0:
                continue
            bary = torch.stack([w0[n, r, q], w1[n, r, q], w2[n, r, q]], 1)
            zi = tri_z[idx[n]]
            pb = bary / zi
            inv_z = pb.sum(1)
            pix_all.append(py[n, r, q] * W + px[n, r, q])
            z_all.append(1.0 / inv_z)
            f_all.append(idx[n])
            b_all.append(pb / inv_z[:, None])
    face_id = torch.full((H * W,), -1, dtype=torch.long)
    bary_img = torch.zeros(H * W, 3)
    if pix_all:
        pix, z, fid, bary = (torch.cat(t) for t in (pix_all, z_all, f_all, b_all))
        zbuf = torch.full((H * W,), float("inf")).scatter_reduce(0, pix, z, reduce="amin")
        win = z <= zbuf[pix]
        face_id[pix[win]] = fid[win]
        bary_img[pix[win]] = bary[win]
    return face_id.view(H, W), bary_img.view(H, W, 3)


def render_mesh(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, camera: Camera,
                size: tuple[int, int] = (512, 512), appearance: Appearance | None = None,
                supersample: int = 1) -> np.ndarray:
    """Render a coloured mesh. vertices (V, 3) metres (world), faces (F, 3), colors (V, 3) in [0, 1].

    `camera` must be resolved (see `Camera.resolve`). Returns (H, W, 3) uint8.
    """
    app = appearance or Appearance()
    H, W = size
    Hs, Ws = H * supersample, W * supersample
    eye, R = camera.pose()
    v = torch.as_tensor(np.asarray(vertices, np.float32))
    f = torch.as_tensor(np.asarray(faces, np.int64))
    Rt = torch.as_tensor(R, dtype=torch.float32)
    pc = (v - torch.as_tensor(eye, dtype=torch.float32)) @ Rt.T
    foc = (Hs / 2) / math.tan(math.radians(camera.fov_deg) / 2)
    z = pc[:, 2]
    uv = torch.stack([Ws / 2 + foc * pc[:, 0] / z, Hs / 2 - foc * pc[:, 1] / z], 1)
    face_id, bary = rasterize(uv, z, f, (Hs, Ws))
    # Background: vertical gradient.
    t = torch.linspace(0, 1, Hs)[:, None, None]
    img = (1 - t) * torch.tensor(app.background_top, dtype=torch.float32) + t * torch.tensor(
        app.background_bottom, dtype=torch.float32)
    img = img.expand(Hs, Ws, 3).clone()
    hit = face_id >= 0
    if hit.any():
        fid = face_id[hit]
        b = bary[hit]
        tri = f[fid]  # (P, 3)
        n_cam = vertex_normals(pc * torch.tensor([1.0, 1.0, 1.0]), f)
        n = (n_cam[tri] * b[..., None]).sum(1)
        p = (pc[tri] * b[..., None]).sum(1)
        n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        # Two-sided: a normal is turned towards the camera (which looks along +z of its frame).
        n = torch.where(((n * p).sum(-1, keepdim=True) > 0), -n, n)
        # Light given in a frame with z towards the viewer; the camera frame has z away from it.
        light = torch.tensor(app.light_dir, dtype=torch.float32) * torch.tensor([1.0, 1.0, -1.0])
        light = light / light.norm()
        lam = (n @ light).clamp_min(0)
        col = torch.as_tensor(np.asarray(colors, np.float32))[tri]
        c = (col * b[..., None]).sum(1)
        img[hit] = (c * (app.ambient + app.diffuse * lam[:, None])).clamp(0, 1)
    if supersample > 1:
        img = img.view(H, supersample, W, supersample, 3).mean((1, 3))
    return (img.numpy() * 255 + 0.5).astype(np.uint8)


def render_pose(model: BodyModel, global_orient: np.ndarray, body_pose: np.ndarray, camera: Camera,
                size: tuple[int, int] = (512, 512), appearance: Appearance | None = None,
                supersample: int = 1) -> tuple[np.ndarray, Camera]:
    """Pose `model` (global_orient (3,), body_pose (21, 3) axis-angle, see body_model) and render it.

    Returns the image (H, W, 3) uint8 and the resolved camera (for projecting joints).
    """
    verts, _ = model.forward(global_orient, body_pose)
    v = verts[0]
    cam = camera.resolve(v)
    app = appearance or Appearance()
    img = render_mesh(v, model.faces, app.vertex_colors(model.vertex_part), cam, size, app, supersample)
    return img, cam


__all__ = ["PART", "Appearance", "Camera", "random_appearance", "rasterize", "render_mesh", "render_pose"]
