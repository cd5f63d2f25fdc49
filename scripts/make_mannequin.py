"""Build IKMo's SMPL-format mannequin procedurally: `tools/assets/mannequin_smpl.npz`.

No licensed data goes in: a T-pose skeleton with the HumanML3D target bone lengths
(`motion_model/representation/skeleton.py`) and hand-chosen, anatomically plausible bone directions; around it
tubes (torso, limbs, neck) and ellipsoids (head, hands, feet, face features) with realistic adult
proportions so that BlazePose takes the rendering for a person. Skinning weights blend the bones of
each part by distance to the bone segments; shapedirs give height, girth and leg length; posedirs
are zeros; J_regressor averages six invisible anchor vertices around each joint so the regressed
rest joints are the skeleton exactly. Deterministic: same code, same file.

Usage: python scripts/make_mannequin.py [--out tools/assets/mannequin_smpl.npz]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from ikmo.motion_model.fileio import atomic_path
from ikmo.motion_model.representation.skeleton import HUMANML3D_22
from ikmo.tools.body_model import MANNEQUIN_PATH, PART, SMPL_PARENTS

log = logging.getLogger("make_mannequin")

# Rest (T-pose) bone directions of SMPL's 24 joints (bone ending at joint i), roughly those of an
# adult SMPL body: hips below-and-beside the pelvis, spine leaning slightly, arms horizontal.
_DIRS = {
    1: (0.07, -0.09, 0.0), 2: (-0.07, -0.09, 0.0), 3: (0.0, 0.11, -0.025),
    4: (0.03, -0.384, 0.012), 5: (-0.03, -0.384, 0.012), 6: (0.0, 1.0, 0.02),
    7: (-0.012, -0.401, -0.044), 8: (0.012, -0.401, -0.044), 9: (0.0, 1.0, 0.1),
    10: (0.03, -0.055, 0.122), 11: (-0.03, -0.055, 0.122), 12: (0.0, 1.0, -0.1),
    13: (0.074, 0.125, -0.011), 14: (-0.074, 0.125, -0.011), 15: (0.0, 0.06, 0.056),
    16: (0.095, 0.039, -0.012), 17: (-0.095, 0.039, -0.012), 18: (1.0, -0.04, -0.1),
    19: (-1.0, -0.04, -0.1), 20: (1.0, 0.02, 0.02), 21: (-1.0, 0.02, 0.02),
    22: (1.0, -0.03, -0.06), 23: (-1.0, -0.03, -0.06),
}  # fmt: skip
_HAND_LENGTH = 0.085  # wrist → SMPL hand joint (knuckles), metres


def rest_skeleton() -> np.ndarray:
    """(24, 3) T-pose joints, metres, pelvis at (0, 0.93, 0) so that the soles touch y ≈ 0."""
    lengths = np.concatenate([HUMANML3D_22.bone_lengths, [_HAND_LENGTH, _HAND_LENGTH]])
    J = np.zeros((24, 3))
    for i in range(1, 24):
        d = np.asarray(_DIRS[i], dtype=np.float64)
        J[i] = J[SMPL_PARENTS[i]] + lengths[i] * d / np.linalg.norm(d)
    return J


# --------------------------------------------------------------------------- primitives


class Mesh:
    """Accumulates parts: vertices (V,3), faces (F,3), per-vertex part label, candidate bones."""

    def __init__(self) -> None:
        self.verts: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.part: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []
        self.radial: list[np.ndarray] = []  # girth direction per vertex (V,3)
        self.n = 0

    def add(self, v: np.ndarray, f: np.ndarray, part: int | np.ndarray, weights: np.ndarray,
            radial: np.ndarray) -> None:
        self.verts.append(v)
        self.faces.append(f + self.n)
        self.part.append(np.broadcast_to(np.asarray(part), (len(v),)).astype(np.int64))
        self.weights.append(weights)
        self.radial.append(radial)
        self.n += len(v)


def _frame(axis: np.ndarray, side_hint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors orthogonal to `axis` (u close to side_hint)."""
    a = axis / np.linalg.norm(axis)
    u = side_hint - a * (side_hint @ a)
    if np.linalg.norm(u) < 1e-6:
        u = np.cross(a, [0.0, 0.0, 1.0])
    u = u / np.linalg.norm(u)
    return u, np.cross(a, u)


def tube(centers: np.ndarray, ru: np.ndarray, rv: np.ndarray, side_hint: np.ndarray, n_seg: int,
         caps: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generalised cylinder through `centers` (K,3) with elliptical sections (ru along the side axis,
    rv along the other). Returns verts, faces, radial (vertex − axis point)."""
    K = len(centers)
    ang = np.linspace(0, 2 * np.pi, n_seg, endpoint=False)
    verts, radial = [], []
    for k in range(K):
        axis = centers[min(k + 1, K - 1)] - centers[max(k - 1, 0)]
        u, w = _frame(axis, side_hint)
        off = ru[k] * np.cos(ang)[:, None] * u + rv[k] * np.sin(ang)[:, None] * w
        verts.append(centers[k] + off)
        radial.append(off)
    V = np.concatenate(verts)
    R = np.concatenate(radial)
    faces = []
    for k in range(K - 1):
        for s in range(n_seg):
            a, b = k * n_seg + s, k * n_seg + (s + 1) % n_seg
            c, d = a + n_seg, b + n_seg
            faces += [(a, b, d), (a, d, c)]
    if caps:
        for k, sign in ((0, -1), (K - 1, 1)):
            axis = centers[min(k + 1, K - 1)] - centers[max(k - 1, 0)]
            tip = centers[k] + sign * 0.5 * min(ru[k], rv[k]) * axis / np.linalg.norm(axis)
            idx = len(V)
            V = np.vstack([V, tip])
            R = np.vstack([R, tip - centers[k]])
            for s in range(n_seg):
                a, b = k * n_seg + s, k * n_seg + (s + 1) % n_seg
                faces.append((a, idx, b) if sign > 0 else (b, idx, a))
    return V, np.asarray(faces, np.int64), R


def ellipsoid(center: np.ndarray, radii: tuple[float, float, float], axes: np.ndarray | None = None,
              n_lat: int = 12, n_lon: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ellipsoid with semi-axes `radii` along the rows of `axes` (3,3). Returns verts, faces, radial."""
    axes = np.eye(3) if axes is None else axes
    th = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    ph = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    T, P = np.meshgrid(th, ph, indexing="ij")
    unit = np.stack([np.sin(T) * np.cos(P), np.cos(T), np.sin(T) * np.sin(P)], -1).reshape(-1, 3)
    unit = np.vstack([unit, [0, 1, 0], [0, -1, 0]])
    local = unit * np.asarray(radii)
    off = local @ axes
    faces = []
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a, b = i * n_lon + j, i * n_lon + (j + 1) % n_lon
            c, d = a + n_lon, b + n_lon
            faces += [(a, d, b), (a, c, d)]
    top, bot = len(unit) - 2, len(unit) - 1
    last = (n_lat - 2) * n_lon
    for j in range(n_lon):
        faces.append((top, j, (j + 1) % n_lon))
        faces.append((bot, last + (j + 1) % n_lon, last + j))
    return center + off, np.asarray(faces, np.int64), off


def seg_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of points p (N,3) to the segment a–b."""
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-12), 0, 1)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def blend_weights(v: np.ndarray, J: np.ndarray, bones: list[tuple[int, np.ndarray, np.ndarray]],
                  sigma: float = 0.035) -> np.ndarray:
    """(N, 24) weights: softmax of −d²/σ² over candidate bones (joint, segment start, segment end)."""
    d = np.stack([seg_distance(v, a, b) for _, a, b in bones], 1)
    logits = -((d - d.min(1, keepdims=True)) / sigma) ** 2
    w = np.exp(logits)
    w /= w.sum(1, keepdims=True)
    out = np.zeros((len(v), 24))
    for k, (j, _, _) in enumerate(bones):
        out[:, j] += w[:, k]
    return out


def rigid(n: int, joint: int) -> np.ndarray:
    w = np.zeros((n, 24))
    w[:, joint] = 1.0
    return w


# --------------------------------------------------------------------------- the body


def build(J: np.ndarray) -> Mesh:  # noqa: C901 - one linear recipe reads best in one place
    m = Mesh()
    X = np.array([1.0, 0, 0])
    Z = np.array([0, 0, 1.0])

    def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
        return a + (b - a) * t[:, None]

    # Torso: elliptical sections along crotch → pelvis → spine → neck base.
    pelvis, s1, s2, s3, neck = J[0], J[3], J[6], J[9], J[12]
    keys_y = np.array([-0.10, 0.0, s1[1] - pelvis[1], s2[1] - pelvis[1], s3[1] - pelvis[1],
                       neck[1] - pelvis[1] - 0.045, neck[1] - pelvis[1] - 0.01])
    keys_w = np.array([0.150, 0.170, 0.145, 0.150, 0.170, 0.185, 0.075])
    keys_d = np.array([0.095, 0.105, 0.095, 0.105, 0.110, 0.085, 0.060])
    keys_z = np.array([0.0, 0.0, s1[2], s2[2], s3[2], neck[2] + 0.005, neck[2]])
    ys = np.linspace(keys_y[0], keys_y[-1], 22)
    cen = np.stack([np.zeros_like(ys), pelvis[1] + ys, np.interp(ys, keys_y, keys_z)], 1)
    v, f, r = tube(cen, np.interp(ys, keys_y, keys_w), np.interp(ys, keys_y, keys_d), X, 28)
    bones = [(0, pelvis + [0, -0.1, 0], s1), (3, s1, s2), (6, s2, s3), (9, s3, neck),
             (13, s3, J[16]), (14, s3, J[17])]
    m.add(v, f, PART["shirt"] * (v[:, 1] > pelvis[1] + 0.02) + PART["trousers"] * (v[:, 1] <= pelvis[1] + 0.02),
          blend_weights(v, J, bones, 0.05), r)

    # Legs: hip (a bit above, to merge into the pelvis) → knee → ankle.
    for side, (hip, knee, ankle, foot) in ((1, (1, 4, 7, 10)), (-1, (2, 5, 8, 11))):
        top = J[hip] + np.array([0.005 * side, 0.06, 0.0])
        cen = np.concatenate([lerp(top, J[knee], np.linspace(0, 1, 12)[:-1]),
                              lerp(J[knee], J[ankle] + [0, -0.01, 0], np.linspace(0, 1, 10))])
        t = np.linspace(0, 1, len(cen))
        rad = np.interp(t, [0, 0.15, 0.5, 0.55, 0.68, 0.85, 1.0], [0.088, 0.083, 0.058, 0.055, 0.058, 0.045, 0.04])
        v, f, r = tube(cen, rad, rad * 1.0, X, 16)
        bones = [(0, J[0], top), (hip, J[hip], J[knee]), (knee, J[knee], J[ankle])]
        m.add(v, f, PART["trousers"], blend_weights(v, J, bones), r)
        # Foot: heel behind the ankle to the toe tip in front of the foot joint, sole at the floor.
        fwd = J[foot] - J[ankle]
        fwd[1] = 0
        fwd /= np.linalg.norm(fwd)
        heel = J[ankle] + np.array([0, -0.055, 0]) - 0.05 * fwd
        toe = J[foot] + 0.06 * fwd + np.array([0, -0.005, 0])
        cen = lerp(heel, toe, np.linspace(0, 1, 10))
        cen[:, 1] = np.linspace(J[ankle][1] - 0.035, J[foot][1] - 0.025, 10)
        t = np.linspace(0, 1, 10)
        v, f, r = tube(cen, np.interp(t, [0, 0.5, 1], [0.04, 0.05, 0.035]),
                       np.interp(t, [0, 0.3, 1], [0.045, 0.04, 0.025]), X, 14)
        bones = [(ankle, J[ankle], J[foot]), (foot, J[foot], J[foot] + 0.08 * fwd)]
        m.add(v, f, PART["shoes"], blend_weights(v, J, bones, 0.03), r)

    # Arms: from inside the shoulder to the wrist; hands as flat ellipsoids with a thumb.
    for side, (col, sho, elb, wri, hand) in ((1, (13, 16, 18, 20, 22)), (-1, (14, 17, 19, 21, 23))):
        start = J[sho] - side * 0.04 * X
        cen = np.concatenate([lerp(start, J[elb], np.linspace(0, 1, 10)[:-1]),
                              lerp(J[elb], J[wri], np.linspace(0, 1, 9))])
        t = np.linspace(0, 1, len(cen))
        rad = np.interp(t, [0, 0.1, 0.5, 0.55, 1.0], [0.058, 0.055, 0.042, 0.042, 0.03])
        v, f, r = tube(cen, rad, rad, np.array([0, 1.0, 0]), 14)
        bones = [(col, J[col], J[sho]), (sho, J[sho], J[elb]), (elb, J[elb], J[wri])]
        w = blend_weights(v, J, bones, 0.04)
        sleeve = ((v - J[sho]) @ (J[elb] - J[sho])) / np.sum((J[elb] - J[sho]) ** 2) < 0.75
        m.add(v, f, np.where(sleeve, PART["shirt"], PART["skin"]), w, r)
        axis = (J[hand] - J[wri]) / np.linalg.norm(J[hand] - J[wri])
        side_ax = np.cross(axis, np.array([0, 1.0, 0]))
        side_ax /= np.linalg.norm(side_ax)
        up = np.cross(side_ax, axis)
        axes = np.stack([axis, up, side_ax])
        v, f, r = ellipsoid(J[wri] + 0.085 * axis, (0.095, 0.022, 0.045), axes, 10, 14)
        bones = [(wri, J[wri], J[hand]), (hand, J[hand], J[hand] + 0.1 * axis)]
        m.add(v, f, PART["skin"], blend_weights(v, J, bones, 0.05), r)
        thumb_dir = side_ax if side_ax @ Z > 0 else -side_ax  # palms down in the T-pose: thumbs point forward
        th_c = J[wri] + 0.045 * axis + 0.045 * thumb_dir
        v, f, r = ellipsoid(th_c + 0.02 * axis, (0.035, 0.014, 0.014), axes, 6, 8)
        m.add(v, f, PART["skin"], rigid(len(v), wri), r)

    # Neck and head.
    head = J[15]
    cen = lerp(neck + [0, -0.05, -0.01], head + [0, 0.02, -0.01], np.linspace(0, 1, 6))
    v, f, r = tube(cen, np.full(6, 0.052), np.full(6, 0.056), X, 14)
    m.add(v, f, PART["skin"], blend_weights(v, J, [(9, s3, neck), (12, neck, head)], 0.04), r)
    hc = head + np.array([0, 0.085, 0.015])  # skull centre above the head joint
    hr = (0.078, 0.112, 0.098)
    v, f, r = ellipsoid(hc, hr, None, 22, 28)
    rel = (v - hc) / np.asarray(hr)
    hair = ((rel[:, 1] > 0.45) | ((rel[:, 2] < -0.2) & (rel[:, 1] > -0.35))
            | ((np.abs(rel[:, 0]) > 0.8) & (rel[:, 1] > 0.15)))
    m.add(v, f, np.where(hair, PART["hair"], PART["skin"]), rigid(len(v), 15), r)

    def on_face(x: float, y: float) -> np.ndarray:
        """Point on the front of the skull ellipsoid at offsets x, y from its centre."""
        zz = hr[2] * np.sqrt(max(1 - (x / hr[0]) ** 2 - (y / hr[1]) ** 2, 0.0))
        return hc + np.array([x, y, zz])

    for sx in (1, -1):
        e = on_face(0.031 * sx, 0.012)
        v, f, r = ellipsoid(e + [0, 0, -0.002], (0.014, 0.008, 0.008), None, 6, 10)
        m.add(v, f, PART["eye_white"], rigid(len(v), 15), r)
        v, f, r = ellipsoid(e + [0, 0, 0.004], (0.0065, 0.0065, 0.005), None, 6, 8)
        m.add(v, f, PART["pupil"], rigid(len(v), 15), r)
        b = on_face(0.032 * sx, 0.034)
        v, f, r = ellipsoid(b + [0, 0, 0.001], (0.017, 0.004, 0.005), None, 5, 8)
        m.add(v, f, PART["brow"], rigid(len(v), 15), r)
        ear = hc + np.array([sx * hr[0] * 0.97, -0.005, -0.005])
        v, f, r = ellipsoid(ear, (0.012, 0.03, 0.02), None, 6, 8)
        m.add(v, f, PART["skin"], rigid(len(v), 15), r)
    nose = on_face(0.0, -0.018)
    v, f, r = ellipsoid(nose + [0, 0, 0.006], (0.012, 0.022, 0.016), None, 6, 10)
    m.add(v, f, PART["skin"], rigid(len(v), 15), r)
    mouth = on_face(0.0, -0.052)
    v, f, r = ellipsoid(mouth + [0, 0, -0.002], (0.022, 0.007, 0.007), None, 5, 10)
    m.add(v, f, PART["lips"], rigid(len(v), 15), r)
    return m


def make(out: Path) -> dict[str, np.ndarray]:
    J = rest_skeleton()
    # Put the soles on the floor: the lowest foot vertex defines y = 0 in the rest pose.
    m = build(J)
    V = np.concatenate(m.verts)
    lift = -V[:, 1].min()
    J = J + [0, lift, 0]
    m = build(J)
    V = np.concatenate(m.verts)
    F = np.concatenate(m.faces)
    W = np.concatenate(m.weights)
    part = np.concatenate(m.part)
    radial = np.concatenate(m.radial)
    n_mesh = len(V)
    # Six invisible anchors per joint (±1 cm along each axis), averaged by the J_regressor.
    anchors = (J[:, None, :] + 0.01 * np.concatenate([np.eye(3), -np.eye(3)])[None]).reshape(-1, 3)
    anchor_w = np.zeros((len(anchors), 24))
    anchor_w[np.arange(len(anchors)), np.repeat([max(p, 0) for p in SMPL_PARENTS], 6)] = 1.0
    V = np.vstack([V, anchors])
    W = np.vstack([W, anchor_w])
    part = np.concatenate([part, np.full(len(anchors), PART["skin"])])
    radial = np.vstack([radial, np.zeros_like(anchors)])
    Jreg = np.zeros((24, len(V)))
    for j in range(24):
        Jreg[j, n_mesh + 6 * j: n_mesh + 6 * j + 6] = 1 / 6
    # Shape space: 0 height (uniform scale about the floor point below the pelvis), 1 girth
    # (radial), 2 leg length (stretch below the pelvis); the rest zero.
    shapedirs = np.zeros((len(V), 3, 10))
    origin = np.array([J[0][0], 0.0, J[0][2]])
    shapedirs[:, :, 0] = 0.06 * (V - origin)
    shapedirs[:, :, 1] = 0.15 * radial
    below = np.minimum(V[:, 1] - J[0][1], 0.0)
    shapedirs[:, 1, 2] = 0.08 * below
    kintree = np.array([[2**32 - 1 if p < 0 else p for p in SMPL_PARENTS], list(range(24))], dtype=np.uint32)
    data = {
        "v_template": V.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((len(V), 3, 207), np.float32),
        "J_regressor": Jreg.astype(np.float32),
        "weights": W.astype(np.float32),
        "kintree_table": kintree,
        "f": F.astype(np.uint32),
        "vertex_part": part.astype(np.uint8),
    }
    with atomic_path(out) as tmp:
        np.savez_compressed(tmp, **data)
    log.info("wrote %s: %d vertices, %d faces, %.2f MB", out, len(V), len(F), out.stat().st_size / 1e6)
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=MANNEQUIN_PATH)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    make(args.out)


if __name__ == "__main__":
    main()
