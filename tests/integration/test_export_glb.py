"""motion.glb (`ikmo export --format glb`, tools/export_glb.py): checked by the Khronos glTF
validator and read back by three.js's GLTFLoader (tests/js/check_glb.mjs, one node process for
the module): the skinned joints must land within 1 mm of the motion at every frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from external_tools import run_node
from typer.testing import CliRunner

from ikmo.commands.export import register
from ikmo.motion_model.data.synthetic import synthetic_walk
from ikmo.motion_model.errors import MotionDataError, OutputFileError
from ikmo.motion_model.representation.skeleton import HUMANML3D_22
from ikmo.tools.export_glb import glb_bytes, load_body_mesh, write_glb

pytestmark = pytest.mark.integration
CHECK = Path(__file__).resolve().parents[1] / "js" / "check_glb.mjs"
T = 61


@pytest.fixture(scope="module")
def motion() -> np.ndarray:
    """A walk that turns 1.2 rad/s (the root turns 70° over 3 s), arms and legs swinging."""
    return synthetic_walk(T, speed=1.0, turn=1.2, swing=0.6).astype(np.float64)


@pytest.fixture(scope="module")
def glb(motion: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("glb")
    np.save(d / "joints.npy", motion)
    app = typer.Typer()
    register(app, {})
    res = CliRunner().invoke(app, ["export", str(d / "joints.npy"), "--format", "glb", "--out", str(d / "motion.glb")])
    assert res.exit_code == 0, res.output
    return d / "motion.glb"


@pytest.fixture(scope="module")
def read(glb: Path) -> dict[str, Any]:
    return run_node(CHECK, str(glb))


def test_the_khronos_validator_finds_no_issue(read: dict[str, Any]) -> None:
    report = read["validator"]
    assert report["numErrors"] == 0 and report["numWarnings"] == 0, report["messages"]


def test_three_js_plays_the_motion_on_the_skinned_mannequin(read: dict[str, Any], motion: np.ndarray) -> None:
    three = read["three"]
    assert three["boneNames"] == list(HUMANML3D_22.joint_names)
    assert three["fps"] == 20 and three["frames"] == T and three["tracks"] == 23
    assert np.isclose(three["duration"], (T - 1) / 20, atol=1e-5)
    bones, skinned = np.array(three["bones"]), np.array(three["skinned"])
    assert bones.shape == skinned.shape == motion.shape
    # the joints as three.js poses them, and the rest joints skinned by the mesh's bind matrices
    assert np.linalg.norm(bones - motion, axis=-1).max() < 1e-3
    assert np.linalg.norm(skinned - motion, axis=-1).max() < 1e-3
    # the mesh follows: its lowest point (a sole) stays just below the lowest foot joint all along
    below = motion[:, [7, 8, 10, 11], 1].min(axis=1) - np.array(three["lowest"])
    assert np.all((below > 0) & (below < 0.1)), below.round(3)
    assert three["meshes"] >= 4  # one primitive per part: skin, shirt, trousers, shoes, ...


def test_skin_weights_and_bind_pose() -> None:
    body = load_body_mesh()
    assert body.weights.shape == (len(body.vertices), 22)
    assert np.allclose(body.weights.sum(1), 1.0)
    # the wrists carry the hands' weights: every vertex of a hand moves with its wrist
    assert body.weights[:, 20].max() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(("joints", "match"), [
    (np.zeros((0, 22, 3)), "zero frames"),
    (np.full((5, 22, 3), np.nan), "NaN"),
    (np.zeros((5, 21, 3)), r"\(T, 22, 3\)"),
])
def test_bad_motions_are_one_clear_error(joints: np.ndarray, match: str) -> None:
    with pytest.raises(MotionDataError, match=match):
        glb_bytes(joints)


def test_an_unwritable_folder_is_one_clear_error(tmp_path: Path, motion: np.ndarray) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputFileError, match="cannot write"):
        write_glb(blocker / "motion.glb", motion[:5])
