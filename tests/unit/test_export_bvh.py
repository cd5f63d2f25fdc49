"""BVH writer: re-import through our reader (and bvhio) to the same positions, syntax, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ikmo.motion_model.data.bvh import bvh_world_positions, euler_to_matrix, read_bvh
from ikmo.motion_model.errors import MotionDataError, OutputFileError
from ikmo.motion_model.representation.skeleton import HUMANML3D_22
from ikmo.tools.export_bvh import ROTATION_ORDER, bvh_text, continuous_euler, hierarchy_order, write_bvh
from ikmo.tools.rig_rotations import T_POSE_DIRECTIONS_22, kabsch, rig_forward, rotation_between

pytestmark = pytest.mark.unit

NAMES = HUMANML3D_22.joint_names


def synthetic_motion(T: int = 60, seed: int = 0, amplitude: float = 1.0, spins: float = 0.13) -> np.ndarray:
    """(T, 22, 3) metres: a rig with the target bone lengths, smooth random joint rotations (up to
    ~70°, large enough to cross Euler singular regions), walking along a curve."""
    rng = np.random.default_rng(seed)
    rest = T_POSE_DIRECTIONS_22 * HUMANML3D_22.bone_lengths[:, None]
    t = np.linspace(0, 2 * np.pi, T)[:, None]
    amp, freq, phase = rng.uniform(0.2, 1.2, (3, 22, 3)) * [[[amplitude]], [[2]], [[3]]]
    rotvec = amp[None] * np.sin(freq[None] * t[..., None] + phase[None])  # (T, 22, 3)
    rotvec[:, 0, :] = [0, 1, 0] * t * spins * 2 * np.pi / t[-1] + rotvec[:, 0] * 0.2  # turning while walking
    local = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(T, 22, 3, 3)
    root = np.stack([np.sin(t[:, 0]) * 2, 0.9 + 0.05 * np.sin(4 * t[:, 0]), t[:, 0]], 1)
    return rig_forward(root, local, rest)


def reimport(path: Path, scale: float = 1.0) -> np.ndarray:
    m = read_bvh(path)
    idx = [m.names.index(n) for n in NAMES]
    return bvh_world_positions(m)[:, idx] / scale


def test_fixture_round_trip_exact(tmp_path: Path, hml3d_fixture_dir: Path) -> None:
    joints = np.load(hml3d_fixture_dir / "new_joints" / "012314.npy")
    for units, scale in (("m", 1.0), ("cm", 100.0)):
        path = tmp_path / f"fixture_{units}.bvh"
        rig = write_bvh(path, joints, units=units)
        err = np.linalg.norm(reimport(path, scale) - joints, axis=-1).max()
        assert err < 1e-4, f"{units}: re-import differs by {err * 1e3:.3f} mm"
        assert rig.max_error_m < 1e-4


def test_synthetic_round_trip_exact(tmp_path: Path) -> None:
    joints = synthetic_motion()
    path = tmp_path / "synthetic.bvh"
    write_bvh(path, joints, fps=30.0)
    assert np.linalg.norm(reimport(path) - joints, axis=-1).max() < 1e-4
    assert read_bvh(path).frame_time == pytest.approx(1 / 30.0, abs=1e-7)


def test_reported_error_matches_reimport_on_noisy_motion(tmp_path: Path) -> None:
    """A generated motion whose bones stretch cannot be matched by a fixed rig: the writer must say by
    how much (the number it reports is what a reader gets), and errors must not accumulate along chains."""
    joints = synthetic_motion(seed=1)
    noisy = joints + np.random.default_rng(2).normal(0, 0.004, joints.shape)
    path = tmp_path / "noisy.bvh"
    rig = write_bvh(path, noisy)
    err = np.linalg.norm(reimport(path) - noisy, axis=-1)
    assert abs(err.max() - rig.max_error_m) < 1e-4
    # 4 mm noise per coordinate: without aiming from the solved parent the wrists drift by several cm.
    assert err.max() < 0.03
    assert np.median(err) < 0.01


def test_stretch_mode_is_exact_for_any_motion(tmp_path: Path) -> None:
    joints = synthetic_motion(seed=1)
    noisy = joints + np.random.default_rng(2).normal(0, 0.004, joints.shape)
    path = tmp_path / "stretch.bvh"
    rig = write_bvh(path, noisy, stretch=True)
    assert rig.max_error_m == 0.0
    assert np.linalg.norm(reimport(path) - noisy, axis=-1).max() < 1e-5
    assert all(len(c) == 6 for c in read_bvh(path).channels)


def test_independent_reader_bvhio(tmp_path: Path) -> None:
    bvhio = pytest.importorskip("bvhio")
    joints = synthetic_motion(T=20)
    path = tmp_path / "b.bvh"
    write_bvh(path, joints)
    root = bvhio.readAsHierarchy(str(path))
    for f in (0, 7, 19):
        root.loadPose(f)
        pos = {j.Name: np.array(list(j.PositionWorld)) for j, _, _ in root.layout()}
        got = np.stack([pos[n] for n in NAMES])
        assert np.abs(got - joints[f]).max() < 1e-4


def test_syntax_blender_accepts(tmp_path: Path) -> None:
    text, _ = bvh_text(synthetic_motion(T=5))
    lines = [ln.strip() for ln in text.splitlines()]
    assert lines[0] == "HIERARCHY" and lines[1] == "ROOT pelvis"
    assert lines[4] == "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
    assert sum(ln.startswith("JOINT ") for ln in lines) == 21
    assert sum(ln == "End Site" for ln in lines) == len([j for j in range(22) if not HUMANML3D_22.children(j)])
    assert sum(ln == "CHANNELS 3 Zrotation Xrotation Yrotation" for ln in lines) == 21
    assert text.count("{") == text.count("}")
    i = lines.index("MOTION")
    assert lines[i + 1] == "Frames: 5" and lines[i + 2].startswith("Frame Time: 0.05")
    rows = lines[i + 3 :]
    assert len(rows) == 5 and all(len(r.split()) == 6 + 21 * 3 for r in rows)
    # Joint names appear in depth-first order, which is the MOTION column order.
    declared = [ln.split()[1] for ln in lines if ln.startswith(("ROOT ", "JOINT "))]
    assert declared == [NAMES[j] for j in hierarchy_order()]


def test_channels_are_continuous(tmp_path: Path) -> None:
    """Two full turns of the root and moderate limb motion: principal-value Euler angles would jump
    by 360° at ±180°, and by ~180° where the alternative angle triple is closer."""
    joints = synthetic_motion(T=120, amplitude=0.35, spins=2.0)
    path = tmp_path / "c.bvh"
    write_bvh(path, joints)
    euler = read_bvh(path).euler_deg
    assert np.abs(euler[:, 0, 2]).max() > 360.0  # the yaw channel keeps counting past a full turn
    assert np.abs(np.diff(euler, axis=0)).max() < 45.0
    assert np.linalg.norm(reimport(path) - joints, axis=-1).max() < 1e-4


def test_euler_round_trip_including_gimbal_and_continuity() -> None:
    R = Rotation.random(200, random_state=1).as_matrix()
    locked = Rotation.from_euler(ROTATION_ORDER, [[30, 90, 10], [-50, -90, 0], [0, 89.9999, 3]], degrees=True)
    R = np.concatenate([R, locked.as_matrix()])[:, None]  # (T, 1, 3, 3): a jumpy "motion"
    e = continuous_euler(R)
    back = euler_to_matrix(e, (ROTATION_ORDER,))
    assert np.abs(back - R).max() < 1e-6


def test_rotation_helpers() -> None:
    u = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    v = np.array([[-1.0, 0, 0], [0, 2, 0], [1, 0, 0], [0, 0, -3]])
    R = rotation_between(u, v)
    assert np.allclose(np.einsum("nab,nb->na", R, u / np.linalg.norm(u, axis=1, keepdims=True)),
                       v / np.linalg.norm(v, axis=1, keepdims=True), atol=1e-9)
    assert np.allclose(np.linalg.det(R), 1.0)
    true = Rotation.random(random_state=3).as_matrix()
    pts = np.random.default_rng(0).normal(size=(3, 3))
    assert np.allclose(kabsch(pts, pts @ true.T), true, atol=1e-9)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((10, 21, 3)), r"\(T, 22, 3\)"),
        (np.zeros((0, 22, 3)), "zero frames"),
        (np.full((4, 22, 3), np.nan), "NaN"),
    ],
)
def test_bad_input(tmp_path: Path, bad: np.ndarray, match: str) -> None:
    with pytest.raises(MotionDataError, match=match):
        write_bvh(tmp_path / "x.bvh", bad)
    assert not list(tmp_path.iterdir())


def test_unwritable_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputFileError, match="cannot write"):
        write_bvh(blocker / "x.bvh", synthetic_motion(T=3))
