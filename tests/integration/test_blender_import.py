"""Blender itself reads what we write: Debian's Blender, headless, imports our BVH, our GLB and a
BVH retargeted onto a user's rig with its own importers (tests/blender/read_motions.py, one
Blender process for the module), and its evaluated bone heads are compared with the motion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from external_tools import run_blender
from rig_bodies import FAMILIES, body_bvh

from ikmo.motion_model.data.synthetic import synthetic_walk
from ikmo.motion_model.representation.skeleton import HUMANML3D_22
from ikmo.tools.export_bvh import write_bvh
from ikmo.tools.export_glb import write_glb
from ikmo.tools.retarget_bvh import write_retargeted_bvh

pytestmark = pytest.mark.integration
bvhio = pytest.importorskip("bvhio")
SCRIPT = Path(__file__).resolve().parents[1] / "blender" / "read_motions.py"
NAMES = list(HUMANML3D_22.joint_names)
T = 61


def y_up(blender_points: np.ndarray) -> np.ndarray:
    """Blender's Z-up (x, y, z) → the files' Y-up (x, z, −y): the importers' axis conversion undone."""
    p = np.asarray(blender_points)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("blender")
    motion = synthetic_walk(T, speed=1.0, turn=1.2, swing=0.6).astype(np.float64)
    write_bvh(d / "motion.bvh", motion)
    write_glb(d / "motion.glb", motion)
    rig_names = FAMILIES["mixamo"]
    write_retargeted_bvh(d / "on_rig.bvh", motion, body_bvh(d / "mixamo.bvh", rig_names))
    rig_joints = [j.Name for j, _, _ in bvhio.readAsHierarchy(str(d / "on_rig.bvh")).layout()]
    jobs = [{"kind": "bvh", "path": str(d / "motion.bvh"), "bones": NAMES},
            {"kind": "glb", "path": str(d / "motion.glb"), "bones": NAMES},
            {"kind": "bvh", "path": str(d / "on_rig.bvh"), "bones": rig_joints}]
    (d / "jobs.json").write_text(json.dumps(jobs))
    run_blender(SCRIPT, str(d / "jobs.json"), str(d / "out.json"))
    bvh, glb, rig = json.loads((d / "out.json").read_text())
    return {"motion": motion, "bvh": bvh, "glb": glb, "rig": rig, "rig_file": d / "on_rig.bvh",
            "rig_joints": rig_joints}


def test_blenders_bvh_importer_puts_every_joint_within_1mm(files: dict[str, Any]) -> None:
    got = files["bvh"]
    assert got["frame_range"] == [1, T] and got["fps"] == 20  # the importer set the scene to the file's rate
    assert set(NAMES) <= set(got["bones"])
    err = np.linalg.norm(y_up(got["heads"]) - files["motion"], axis=-1)
    assert err.max() < 1e-3, f"max {err.max() * 1e3:.3f} mm"


def test_blenders_gltf_importer_makes_an_armature_a_skinned_mesh_and_the_action(files: dict[str, Any]) -> None:
    got = files["glb"]
    assert got["armatures"] == ["IKMo"] and got["bones"] and set(got["bones"]) == set(NAMES)
    meshes = got["meshes"]
    assert len(meshes) == 1 and meshes[0]["parent"] == "IKMo" and meshes[0]["armature_modifiers"] == ["IKMo"]
    assert meshes[0]["vertices"] > 1000
    assert got["frame_range"][1] - got["frame_range"][0] + 1 == T and got["fps"] == 20
    err = np.linalg.norm(y_up(got["heads"]) - files["motion"], axis=-1)
    assert err.max() < 1e-3, f"max {err.max() * 1e3:.3f} mm"


def test_a_bvh_retargeted_onto_a_user_rig_imports_as_that_rig(files: dict[str, Any]) -> None:
    got = files["rig"]
    assert got["bones"] == files["rig_joints"]  # the rig's own names, in its own hierarchy
    assert got["frame_range"] == [1, T]
    # Blender poses it as an independent reader (bvhio) does, frame by frame (the file is in cm)
    root = bvhio.readAsHierarchy(str(files["rig_file"]))
    want = []
    for f in range(T):
        root.loadPose(f)
        want.append([list(j.PositionWorld) for j, _, _ in root.layout()])
    err = np.linalg.norm(y_up(got["heads"]) - np.array(want), axis=-1)
    assert err.max() < 0.01, f"max {err.max():.4f} cm"
