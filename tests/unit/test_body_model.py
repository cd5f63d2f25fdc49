"""The procedural SMPL-format mannequin: loads through smplx, has the HumanML3D target skeleton, and
smplx's forward kinematics agree with the fitter's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ikmo.motion_model.errors import ConfigError, InputFileError
from ikmo.motion_model.representation.skeleton import HUMANML3D_22
from ikmo.tools.body_model import MANNEQUIN_PATH, PART, SMPL_PARENTS, load_body_model, parts_from_weights
from ikmo.tools.smpl_fit import axis_angle_to_matrix, fk_numpy

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model():
    return load_body_model()


def test_mannequin_file_is_small_and_complete() -> None:
    assert MANNEQUIN_PATH.stat().st_size < 3e6
    data = np.load(MANNEQUIN_PATH)
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f"):
        assert key in data.files
    assert data["kintree_table"].shape == (2, 24)
    assert np.allclose(data["weights"].sum(1), 1.0, atol=1e-5)
    assert data["f"].max() < len(data["v_template"])


def test_rest_skeleton_has_target_bone_lengths(model) -> None:
    J = model.rest_joints
    for i in range(1, 22):
        length = np.linalg.norm(J[i] - J[SMPL_PARENTS[i]])
        assert length == pytest.approx(HUMANML3D_22.bone_lengths[i], abs=1e-5), HUMANML3D_22.joint_names[i]
    # T-pose: arms out to the sides (+X is the left), legs down, head up.
    assert J[20, 0] > J[16, 0] + 0.4 and J[21, 0] < J[17, 0] - 0.4
    assert J[7, 1] < J[4, 1] < J[1, 1] < J[0, 1] < J[15, 1]
    # Soles on the floor.
    v, _ = model.forward(np.zeros(3), np.zeros((21, 3)))
    assert v[0, :, 1].min() == pytest.approx(0.0, abs=2e-3)


def test_smplx_forward_kinematics_matches_fitter(model) -> None:
    rng = np.random.default_rng(0)
    go = rng.normal(0, 0.5, 3)
    bp = rng.normal(0, 0.4, (21, 3))
    _, joints = model.forward(go, bp)
    local = axis_angle_to_matrix(np.concatenate([go[None], bp]))
    ours = fk_numpy(local, model.rest_joints[:22] - model.rest_joints[0])
    smplx_rel = joints[0, :22] - joints[0, 0]
    np.testing.assert_allclose(smplx_rel, ours, atol=1e-5)


def test_shape_space_changes_height_not_skeleton_topology(model) -> None:
    bp = np.zeros((21, 3))
    v0, j0 = model.forward(np.zeros(3), bp)
    v1, j1 = model.forward(np.zeros(3), bp, betas=np.eye(10)[0] * 2)
    h0 = v0[0, :, 1].max() - v0[0, :, 1].min()
    h1 = v1[0, :, 1].max() - v1[0, :, 1].min()
    assert h1 > h0 * 1.1
    girth, _ = model.forward(np.zeros(3), bp, betas=np.eye(10)[1] * 2)
    _, jg = model.forward(np.zeros(3), bp, betas=np.eye(10)[1] * 2)
    np.testing.assert_allclose(jg, j0, atol=1e-5)  # girth moves skin, not joints
    assert np.abs(girth - v0).max() > 0.01


def test_vertex_parts_cover_clothes_and_face(model) -> None:
    labels = set(np.unique(model.vertex_part).tolist())
    for part in ("skin", "shirt", "trousers", "shoes", "hair", "pupil"):
        assert PART[part] in labels
    w = np.zeros((3, 24))
    w[0, 15], w[1, 6], w[2, 4] = 1, 1, 1
    assert parts_from_weights(w).tolist() == [PART["skin"], PART["shirt"], PART["trousers"]]


def test_bad_model_paths_raise_our_errors(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("IKMO_SMPL_MODEL", str(tmp_path / "missing.npz"))
    with pytest.raises(ConfigError, match="IKMO_SMPL_MODEL"):
        load_body_model()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputFileError, match="bad.npz"):
        load_body_model(bad)
    partial = tmp_path / "partial.npz"
    np.savez(partial, v_template=np.zeros((3, 3)))
    with pytest.raises(InputFileError, match="lacks"):
        load_body_model(partial)


def test_generator_is_deterministic(tmp_path) -> None:
    """Two runs on one machine give the same bytes; the bundled asset is what the script makes.

    Against the committed asset the float arrays are compared to a nanometre: a vertex whose y
    should be 0 comes out as +3e-17 on one CPU and -8e-17 on another (libm / SIMD rounding), which
    is not a difference in the mannequin. Integer arrays (faces, kinematic tree) must be identical.
    """
    runs = []
    for name in ("a.npz", "b.npz"):
        subprocess.run([sys.executable, str(REPO / "scripts" / "make_mannequin.py"), "--out", str(tmp_path / name)],
                       check=True, capture_output=True)
        runs.append(np.load(tmp_path / name))
    a, b = runs
    bundled = np.load(MANNEQUIN_PATH)
    assert sorted(a.files) == sorted(bundled.files)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        if a[key].dtype.kind == "f":
            np.testing.assert_allclose(a[key], bundled[key], rtol=0, atol=1e-9, err_msg=key)
        else:
            np.testing.assert_array_equal(a[key], bundled[key], err_msg=key)
