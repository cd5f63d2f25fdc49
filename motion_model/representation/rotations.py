"""Rotation math: the one home for quaternions, matrices, axis-angle, 6D and Euler angles.

Conventions (those of HumanML3D's ``common/quaternion.py``, so that its data round-trips):

- quaternions are ``(..., 4)`` in ``(w, x, y, z)`` order, Hamilton product, active rotation of
  column vectors: ``quat_rotate(q, v) == quat_to_matrix(q) @ v``;
- rotation matrices ``(..., 3, 3)`` act on column vectors;
- the continuous 6D representation (Zhou et al. 2019) is the first two *columns* of the rotation
  matrix concatenated: ``[R[:, 0], R[:, 1]]`` (HumanML3D's ``quaternion_to_cont6d``);
- angles are radians unless a parameter name says ``_deg``.

Every function is batched over leading dimensions, differentiable, works in float32 or float64,
and takes torch tensors or numpy arrays (`numpy_compatible`: numpy in, numpy out, computed in float64).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

_EPS = 1e-8


F = TypeVar("F", bound=Callable[..., Any])


def numpy_compatible(fn: F) -> F:
    """Let a torch function take numpy arrays: ndarray arguments become float64 tensors and the
    result (a tensor or a tuple of them) goes back to numpy in the dtype of the first array."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ref = next((a for a in args if isinstance(a, np.ndarray)), None)
        if ref is None:
            return fn(*args, **kwargs)
        conv = [torch.from_numpy(np.asarray(a, dtype=np.float64)) if isinstance(a, np.ndarray) else a
                for a in args]
        kw = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) if isinstance(v, np.ndarray) else v
              for k, v in kwargs.items()}
        out = fn(*conv, **kw)
        dtype = ref.dtype if np.issubdtype(ref.dtype, np.floating) else np.float64
        if isinstance(out, tuple):
            return tuple(o.detach().numpy().astype(dtype, copy=False) for o in out)
        return out.detach().numpy().astype(dtype, copy=False)

    return wrapper  # type: ignore[return-value]


# ----------------------------------------------------------------------------------- quaternions


def quat_identity(shape: tuple[int, ...] = (), dtype: torch.dtype = torch.float32,
                  device: torch.device | None = None) -> torch.Tensor:
    """Identity quaternions of shape ``shape + (4,)``."""
    q = torch.zeros(*shape, 4, dtype=dtype, device=device)
    q[..., 0] = 1.0
    return q


@numpy_compatible
def quat_normalize(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)``; a zero quaternion stays zero instead of becoming NaN."""
    return q / q.norm(dim=-1, keepdim=True).clamp_min(_EPS)


@numpy_compatible
def normalize_vec(v: torch.Tensor) -> torch.Tensor:
    """Unit vectors ``(..., 3)``; a zero vector stays zero instead of becoming NaN."""
    return v / v.norm(dim=-1, keepdim=True).clamp_min(_EPS)


@numpy_compatible
def quat_mul(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``q ⊗ r`` of ``(..., 4)`` quaternions (broadcasting): rotate by r, then q."""
    w1, x1, y1, z1 = q.unbind(-1)
    w2, x2, y2, z2 = r.unbind(-1)
    return torch.stack(
        (
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ),
        dim=-1,
    )


@numpy_compatible
def quat_conj(q: torch.Tensor) -> torch.Tensor:
    """Conjugate ``(w, -x, -y, -z)``: the inverse of a unit quaternion."""
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


quat_inv = quat_conj


@numpy_compatible
def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors ``v (..., 3)`` by unit quaternions ``q (..., 4)`` (broadcasting)."""
    # np.broadcast_shapes: torch.broadcast_shapes imports sympy on first use (~1 s on the generate path)
    shape = torch.Size(np.broadcast_shapes(tuple(q.shape[:-1]), tuple(v.shape[:-1])))
    q = q.expand(shape + (4,))
    v = v.expand(shape + (3,))
    w, u = q[..., :1], q[..., 1:]
    uv = torch.linalg.cross(u, v, dim=-1)
    uuv = torch.linalg.cross(u, uv, dim=-1)
    return v + 2.0 * (w * uv + uuv)


@numpy_compatible
def quat_between(v0: torch.Tensor, v1: torch.Tensor) -> torch.Tensor:
    """The shortest-arc unit quaternion taking the direction of ``v0`` to that of ``v1`` (both ``(..., 3)``).

    Same formula as HumanML3D's ``qbetween``; where that one returns NaN it is made total:
    antiparallel vectors give a half turn about an axis perpendicular to ``v0`` and a zero
    vector gives the identity.
    """
    v0, v1 = torch.broadcast_tensors(v0, v1)
    axis = torch.linalg.cross(v0, v1, dim=-1)
    n0n1 = (v0.square().sum(-1, keepdim=True) * v1.square().sum(-1, keepdim=True)).sqrt()
    w = n0n1 + (v0 * v1).sum(-1, keepdim=True)
    q = torch.cat((w, axis), dim=-1)
    norm = q.norm(dim=-1, keepdim=True)
    degenerate = norm <= 1e-7 * n0n1.clamp_min(_EPS)
    if bool(degenerate.any()):
        # Half turn about any axis perpendicular to v0: cross with x, or with y when v0 ∥ x.
        ex = torch.zeros_like(v0)
        ex[..., 0] = 1.0
        ey = torch.zeros_like(v0)
        ey[..., 1] = 1.0
        perp = torch.linalg.cross(v0, ex, dim=-1)
        ok = perp.norm(dim=-1, keepdim=True) > 1e-6 * v0.norm(dim=-1, keepdim=True).clamp_min(_EPS)
        perp = torch.where(ok, perp, torch.linalg.cross(v0, ey, dim=-1))
        half_turn = torch.cat((torch.zeros_like(w), normalize_vec(perp)), dim=-1)
        ident = torch.zeros_like(q)
        ident[..., 0] = 1.0
        zero_input = n0n1 <= _EPS
        q = torch.where(degenerate, torch.where(zero_input, ident, half_turn), q)
        norm = q.norm(dim=-1, keepdim=True)
    return q / norm.clamp_min(_EPS)




@numpy_compatible
def quat_fix(q: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """Flip signs along time (``dim`` of a ``(..., T, ..., 4)`` tensor) so consecutive quaternions agree.

    q and -q are the same rotation; this removes the jumps between them (HumanML3D's ``qfix``).
    """
    dim = dim % q.dim()
    q_t = q.movedim(dim, 0)
    dots = (q_t[1:] * q_t[:-1]).sum(-1)
    flips = torch.cumsum((dots < 0).to(torch.int64), dim=0) % 2
    sign = torch.cat((torch.zeros_like(flips[:1]), flips), dim=0)
    out = torch.where(sign[..., None].bool(), -q_t, q_t)
    return out.movedim(0, dim)


@numpy_compatible
def quat_slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical interpolation from ``q0`` to ``q1`` at fraction ``t`` (shortest path), ``(..., 4)``."""
    t = torch.as_tensor(t, dtype=q0.dtype, device=q0.device)
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    t = t[..., None] if t.dim() == q0.dim() - 1 and t.dim() > 0 else t
    small = sin_theta < 1e-6
    safe = torch.where(small, torch.ones_like(sin_theta), sin_theta)
    a = torch.where(small, 1.0 - t, torch.sin((1.0 - t) * theta) / safe)
    b = torch.where(small, t, torch.sin(t * theta) / safe)
    return quat_normalize(a * q0 + b * q1)


# -------------------------------------------------------------------------------- conversions


@numpy_compatible
def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` → rotation matrices ``(..., 3, 3)``."""
    w, x, y, z = quat_normalize(q).unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    m = torch.stack(
        (
            1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
            2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
            2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
        ),
        dim=-1,
    )  # fmt: skip
    return m.reshape(q.shape[:-1] + (3, 3))


@numpy_compatible
def matrix_to_quat(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` → unit quaternions ``(..., 4)`` with ``w >= 0``.

    Picks, per element, the numerically best of the four Shepperd candidates so that it stays
    accurate (and differentiable) near half turns.
    """
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4·q_i² for each component: the largest one gives a well-conditioned division.
    sq = torch.stack(
        (1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22), dim=-1
    )
    r = sq.clamp_min(1e-12).sqrt()  # 2·|q_i|
    cands = torch.stack(
        (
            torch.stack((r[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01), dim=-1) / (2 * r[..., 0:1]),
            torch.stack((m21 - m12, r[..., 1] ** 2, m10 + m01, m02 + m20), dim=-1) / (2 * r[..., 1:2]),
            torch.stack((m02 - m20, m10 + m01, r[..., 2] ** 2, m12 + m21), dim=-1) / (2 * r[..., 2:3]),
            torch.stack((m10 - m01, m20 + m02, m21 + m12, r[..., 3] ** 2), dim=-1) / (2 * r[..., 3:4]),
        ),
        dim=-2,
    )
    best = sq.argmax(dim=-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(best.shape + (1, 4))).squeeze(-2)
    q = torch.where(q[..., :1] < 0, -q, q)
    return quat_normalize(q)


@numpy_compatible
def quat_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` → axis-angle vectors ``(..., 3)`` (axis × angle, radians, angle ≤ π)."""
    q = quat_normalize(q)
    q = torch.where(q[..., :1] < 0, -q, q)
    sin_half = q[..., 1:].norm(dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(sin_half, q[..., :1])
    # angle / sin(angle/2) → 2 as the angle → 0; the Taylor form keeps the gradient finite there.
    small = sin_half < 1e-6
    scale = torch.where(small, 2.0 + angle.square() / 12.0, angle / sin_half.clamp_min(1e-12))
    return q[..., 1:] * scale


@numpy_compatible
def axis_angle_to_quat(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle vectors ``(..., 3)`` (radians) → unit quaternions ``(..., 4)``."""
    angle = aa.norm(dim=-1, keepdim=True)
    half = 0.5 * angle
    small = angle < 1e-6
    # sin(θ/2)/θ → 1/2 − θ²/48 near zero.
    k = torch.where(small, 0.5 - angle.square() / 48.0, torch.sin(half) / angle.clamp_min(1e-12))
    return torch.cat((torch.cos(half), aa * k), dim=-1)


@numpy_compatible
def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(..., 3)`` → rotation matrices ``(..., 3, 3)``."""
    return quat_to_matrix(axis_angle_to_quat(aa))


@numpy_compatible
def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` → axis-angle ``(..., 3)``."""
    return quat_to_axis_angle(matrix_to_quat(m))


@numpy_compatible
def matrix_to_cont6d(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` → 6D ``(..., 6)``: first column, then second column."""
    return torch.cat((m[..., :, 0], m[..., :, 1]), dim=-1)


@numpy_compatible
def quat_to_cont6d(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` → HumanML3D 6D rotations ``(..., 6)``."""
    return matrix_to_cont6d(quat_to_matrix(q))


@numpy_compatible
def cont6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """6D ``(..., 6)`` → rotation matrices ``(..., 3, 3)`` by Gram-Schmidt (columns x, y, z).

    x = normalise(a); z = normalise(x × b); y = z × x, as HumanML3D's ``cont6d_to_matrix``.
    """
    x = normalize_vec(d6[..., 0:3])
    z = normalize_vec(torch.linalg.cross(x, d6[..., 3:6], dim=-1))
    y = torch.linalg.cross(z, x, dim=-1)
    return torch.stack((x, y, z), dim=-1)


@numpy_compatible
def cont6d_to_quat(d6: torch.Tensor) -> torch.Tensor:
    """6D ``(..., 6)`` → unit quaternions ``(..., 4)``."""
    return matrix_to_quat(cont6d_to_matrix(d6))


# --------------------------------------------------------------------------------- Euler angles

_AXES = {"X": 0, "Y": 1, "Z": 2}


def _axis_matrix(axis: str, angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == "X":
        rows = (one, zero, zero, zero, c, -s, zero, s, c)
    elif axis == "Y":
        rows = (c, zero, s, zero, one, zero, -s, zero, c)
    else:
        rows = (c, -s, zero, s, c, zero, zero, zero, one)
    return torch.stack(rows, dim=-1).reshape(angle.shape + (3, 3))


def _check_order(order: str) -> str:
    order = order.upper()
    if len(order) != 3 or any(a not in _AXES for a in order) or order[0] == order[1] or order[1] == order[2]:
        raise ValueError(f"Euler order {order!r} is not valid: use three axes from X, Y, Z such as 'ZXY'")
    return order


@numpy_compatible
def euler_to_matrix(angles_deg: torch.Tensor, order: str = "ZXY") -> torch.Tensor:
    """Euler angles ``(..., 3)`` in degrees → rotation matrices ``(..., 3, 3)``.

    ``angles_deg[..., i]`` is the angle about axis ``order[i]``, and the matrix is the product
    ``R_order[0] @ R_order[1] @ R_order[2]`` — BVH's convention: channels listed as
    ``Zrotation Xrotation Yrotation`` mean ``order="ZXY"`` with the angles in that channel order.
    """
    order = _check_order(order)
    rad = torch.deg2rad(angles_deg)
    m = _axis_matrix(order[0], rad[..., 0])
    m = m @ _axis_matrix(order[1], rad[..., 1])
    return m @ _axis_matrix(order[2], rad[..., 2])


@numpy_compatible
def matrix_to_euler(m: torch.Tensor, order: str = "ZXY") -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` → Euler angles ``(..., 3)`` in degrees, inverse of `euler_to_matrix`.

    Tait-Bryan orders (three distinct axes) and proper Euler orders (first == last) are supported.
    At gimbal lock the third angle is set to zero.
    """
    order = _check_order(order)
    i, j, k = (_AXES[a] for a in order)
    if i != k:
        # R = Ri(a) Rj(b) Rk(c): the entry m[i, k] = ±sin(b).
        sign = 1.0 if (j - i) % 3 == 1 else -1.0
        sin_b = (sign * m[..., i, k]).clamp(-1.0, 1.0)
        b = torch.asin(sin_b)
        a = torch.atan2(-sign * m[..., j, k], m[..., k, k])
        c = torch.atan2(-sign * m[..., i, j], m[..., i, i])
        locked = sin_b.abs() > 1.0 - 1e-7
        # Gimbal lock: only a ± c is determined; put it all in a.
        a_locked = torch.atan2(sign * m[..., k, j], m[..., j, j])
        a = torch.where(locked, a_locked, a)
        c = torch.where(locked, torch.zeros_like(c), c)
    else:
        # Proper Euler R = Ri(a) Rj(b) Ri(c); l is the remaining axis.
        l_ = 3 - i - j
        sign = 1.0 if (j - i) % 3 == 1 else -1.0
        cos_b = m[..., i, i].clamp(-1.0, 1.0)
        b = torch.acos(cos_b)
        a = torch.atan2(m[..., j, i], -sign * m[..., l_, i])
        c = torch.atan2(m[..., i, j], sign * m[..., i, l_])
        locked = cos_b.abs() > 1.0 - 1e-7
        a_locked = torch.atan2(sign * m[..., l_, j], m[..., j, j])
        a = torch.where(locked, a_locked, a)
        c = torch.where(locked, torch.zeros_like(c), c)
    return torch.rad2deg(torch.stack((a, b, c), dim=-1))


# -------------------------------------------------------------------------------------- yaw


@numpy_compatible
def yaw_quat(angle: torch.Tensor) -> torch.Tensor:
    """Rotations about +Y by ``angle (...)`` radians → quaternions ``(..., 4)``."""
    half = 0.5 * angle
    zero = torch.zeros_like(angle)
    return torch.stack((torch.cos(half), zero, torch.sin(half), zero), dim=-1)


@numpy_compatible
def quat_yaw(q: torch.Tensor) -> torch.Tensor:
    """The heading (rotation about +Y, radians in (-π, π]) of quaternions ``(..., 4)``: where they send +Z."""
    fwd = quat_rotate(q, q.new_tensor([0.0, 0.0, 1.0]).expand(q.shape[:-1] + (3,)))
    return torch.atan2(fwd[..., 0], fwd[..., 2])
