"""Rotation math: conversions agree with each other and with hand-built matrices, in both dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ikmo.motion_model.representation import rotations as R

pytestmark = pytest.mark.unit


def _random_quats(n: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return R.quat_normalize(torch.randn(n, 4, generator=g, dtype=dtype))


def _rz(deg: float) -> torch.Tensor:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _rx(deg: float) -> torch.Tensor:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=torch.float64)


def _ry(deg: float) -> torch.Tensor:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)


def test_quat_to_matrix_of_known_rotation() -> None:
    # 90° about +Z takes +X to +Y.
    q = torch.tensor([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)], dtype=torch.float64)
    torch.testing.assert_close(R.quat_to_matrix(q), _rz(90))
    torch.testing.assert_close(R.quat_rotate(q, torch.tensor([1.0, 0, 0], dtype=torch.float64)),
                               torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_mul_rotate_and_matrix_agree(dtype: torch.dtype, tol: float) -> None:
    q, r = _random_quats(64, 0, dtype), _random_quats(64, 1, dtype)
    v = torch.randn(64, 3, dtype=dtype, generator=torch.Generator().manual_seed(2))
    mq, mr = R.quat_to_matrix(q), R.quat_to_matrix(r)
    torch.testing.assert_close(R.quat_to_matrix(R.quat_mul(q, r)), mq @ mr, atol=tol, rtol=0)
    torch.testing.assert_close(R.quat_rotate(q, v), (mq @ v[..., None])[..., 0], atol=tol * 10, rtol=0)
    torch.testing.assert_close(R.quat_mul(q, R.quat_inv(q)), R.quat_identity((64,), dtype), atol=tol, rtol=0)
    assert R.quat_rotate(q, v).dtype == dtype


def test_rotate_broadcasts_over_leading_dims() -> None:
    q = _random_quats(5, 3).reshape(5, 1, 4)
    v = torch.randn(5, 7, 3, dtype=torch.float64)
    out = R.quat_rotate(q, v)
    assert out.shape == (5, 7, 3)
    torch.testing.assert_close(out[2, 4], R.quat_rotate(q[2, 0], v[2, 4]))


def test_matrix_quat_round_trip_including_half_turns() -> None:
    q = _random_quats(256, 4)
    # Half turns (w = 0) are where naive trace-based conversions break down.
    half = torch.tensor([[0.0, 1, 0, 0], [0.0, 0, 1, 0], [0.0, 0, 0, 1], [0.0, 0.6, 0.8, 0]], dtype=torch.float64)
    q = torch.cat((q, half))
    back = R.matrix_to_quat(R.quat_to_matrix(q))
    # q and -q are the same rotation.
    err = torch.minimum((back - q).abs().amax(-1), (back + q).abs().amax(-1))
    assert err.max().item() < 1e-10


def test_axis_angle_round_trip_and_small_angles() -> None:
    g = torch.Generator().manual_seed(5)
    axis = R.normalize_vec(torch.randn(100, 3, generator=g, dtype=torch.float64))
    angle = torch.rand(100, 1, generator=g, dtype=torch.float64) * (math.pi - 1e-3)
    aa = axis * angle
    torch.testing.assert_close(R.quat_to_axis_angle(R.axis_angle_to_quat(aa)), aa)
    tiny = torch.tensor([[1e-9, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(R.quat_to_axis_angle(R.axis_angle_to_quat(tiny)), tiny)
    torch.testing.assert_close(R.matrix_to_axis_angle(R.axis_angle_to_matrix(aa)), aa)


def test_axis_angle_gradient_is_finite_at_zero() -> None:
    aa = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    R.quat_to_axis_angle(R.axis_angle_to_quat(aa)).sum().backward()
    assert torch.isfinite(aa.grad).all()
    torch.testing.assert_close(aa.grad, torch.ones(3, dtype=torch.float64))


def test_cont6d_is_first_two_columns_and_gram_schmidt_restores_rotation() -> None:
    q = _random_quats(50, 6)
    m = R.quat_to_matrix(q)
    d6 = R.quat_to_cont6d(q)
    torch.testing.assert_close(d6[:, :3], m[:, :, 0])
    torch.testing.assert_close(d6[:, 3:], m[:, :, 1])
    torch.testing.assert_close(R.cont6d_to_matrix(d6), m)
    # A noisy, unnormalised 6D still decodes to a proper rotation.
    noisy = d6 * 3.0 + 0.05 * torch.randn(50, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    mn = R.cont6d_to_matrix(noisy)
    torch.testing.assert_close(mn @ mn.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(50, 3, 3))
    torch.testing.assert_close(torch.linalg.det(mn), torch.ones(50, dtype=torch.float64))


def test_quat_between_maps_directions_and_survives_degenerate_input() -> None:
    g = torch.Generator().manual_seed(8)
    a = torch.randn(100, 3, generator=g, dtype=torch.float64)
    b = torch.randn(100, 3, generator=g, dtype=torch.float64)
    q = R.quat_between(a, b)
    torch.testing.assert_close(R.quat_rotate(q, R.normalize_vec(a)), R.normalize_vec(b))
    # Antiparallel pairs (incl. along x, where the first perpendicular guess fails) and zero vectors.
    v0 = torch.tensor([[0.0, 0, 1], [1.0, 0, 0], [0.3, -0.2, 0.9], [0.0, 0, 0]], dtype=torch.float64)
    v1 = torch.tensor([[0.0, 0, -1], [-2.0, 0, 0], [-0.6, 0.4, -1.8], [0.0, 1, 0]], dtype=torch.float64)
    qd = R.quat_between(v0, v1)
    assert torch.isfinite(qd).all()
    torch.testing.assert_close(qd.norm(dim=-1), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(R.quat_rotate(qd[:3], R.normalize_vec(v0[:3])), R.normalize_vec(v1[:3]))
    torch.testing.assert_close(qd[3], torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))


@pytest.mark.parametrize("order", ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX", "XYX", "XZX", "YXY", "YZY",
                                   "ZXZ", "ZYZ"])
def test_euler_round_trip_every_order(order: str) -> None:
    g = torch.Generator().manual_seed(9)
    ang = (torch.rand(200, 3, generator=g, dtype=torch.float64) - 0.5) * 2 * 170.0
    if order[0] == order[2]:
        ang[:, 1] = ang[:, 1].abs() + 5.0  # proper Euler: middle angle in (0°, 180°)
    else:
        ang[:, 1] = ang[:, 1] * 0.5  # Tait-Bryan: middle angle in (-90°, 90°)
    m = R.euler_to_matrix(ang, order)
    back = R.matrix_to_euler(m, order)
    torch.testing.assert_close(back, ang, atol=1e-8, rtol=0)


def test_euler_follows_channel_order_product() -> None:
    ang = torch.tensor([30.0, -20.0, 45.0], dtype=torch.float64)
    torch.testing.assert_close(R.euler_to_matrix(ang, "ZXY"), _rz(30) @ _rx(-20) @ _ry(45))
    # Gimbal lock still decodes to an equivalent rotation.
    locked = torch.tensor([10.0, 90.0, 25.0], dtype=torch.float64)
    m = R.euler_to_matrix(locked, "XYZ")
    torch.testing.assert_close(R.euler_to_matrix(R.matrix_to_euler(m, "XYZ"), "XYZ"), m, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="Euler order"):
        R.euler_to_matrix(ang, "XXY")


def test_quat_fix_removes_sign_flips() -> None:
    q = _random_quats(1, 10).expand(20, 4).clone()
    q = q + 0.01 * torch.randn(20, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    q[5:9] *= -1
    q[13] *= -1
    fixed = R.quat_fix(q, dim=0)
    assert ((fixed[1:] * fixed[:-1]).sum(-1) > 0).all()
    torch.testing.assert_close(fixed[0], q[0])


def test_slerp_endpoints_and_midpoint() -> None:
    q0 = R.quat_identity((), torch.float64)
    q1 = R.yaw_quat(torch.tensor(math.pi / 2, dtype=torch.float64))
    torch.testing.assert_close(R.quat_slerp(q0, q1, 0.0), q0)
    torch.testing.assert_close(R.quat_slerp(q0, q1, 1.0), q1)
    torch.testing.assert_close(R.quat_slerp(q0, q1, 0.5), R.yaw_quat(torch.tensor(math.pi / 4, dtype=torch.float64)))


def test_yaw_round_trip() -> None:
    ang = torch.linspace(-3.1, 3.1, 25, dtype=torch.float64)
    torch.testing.assert_close(R.quat_yaw(R.yaw_quat(ang)), ang)


def test_numpy_in_numpy_out() -> None:
    q = np.array([[math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)]], dtype=np.float32)
    m = R.quat_to_matrix(q)
    assert isinstance(m, np.ndarray) and m.dtype == np.float32
    np.testing.assert_allclose(m[0], _rz(90).numpy(), atol=1e-6)
    e = R.matrix_to_euler(m, "ZXY")
    np.testing.assert_allclose(e[0], [90.0, 0.0, 0.0], atol=1e-4)


def test_gradients_match_finite_differences() -> None:
    q = _random_quats(3, 12).requires_grad_(True)
    d6 = R.quat_to_cont6d(_random_quats(3, 13)).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: R.quat_rotate(x, torch.ones(3, 3, dtype=torch.float64)), (q,))
    assert torch.autograd.gradcheck(R.cont6d_to_quat, (d6,))
