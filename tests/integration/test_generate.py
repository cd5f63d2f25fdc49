"""generate_motion end to end with tiny random weights: every output file and the report's fields."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ikmo.motion_model.constraints import KeyframePose, MotionDescription, MotionSpec, Trajectory
from ikmo.motion_model.data.synthetic import synthetic_walk
from ikmo.motion_model.representation.features import features_to_pose_frames
from ikmo.motion_model.sampling import load_model

pytestmark = pytest.mark.integration


def _spec(n: int = 40) -> MotionSpec:
    joints = synthetic_walk(n, 1.0, 0.0)
    pose = (joints[20] - joints[20, :1]).tolist()
    traj = [[0.0, 0.9, 1.0 * i / 20] for i in range(n)]
    mask = [i % 10 == 0 for i in range(n)]
    return MotionSpec(description=MotionDescription(text="a person walks forward", duration_s=n / 20),
                      n_frames=n, keyframes=[KeyframePose(time_s=1.0, joints=pose)],
                      trajectory=Trajectory(positions=traj, mask=mask))


def test_generate_motion_writes_every_file_and_a_report(weights_dir, tmp_path) -> None:
    from ikmo.tools.generate import generate_motion
    from ikmo.tools.toolbox import ToolSettings

    spec = _spec()
    model = load_model(weights_dir)
    res = generate_motion(spec, tmp_path / "out", model=model, settings=ToolSettings())
    out = tmp_path / "out"
    for name in ("joints.npy", "features.npy", "motion.bvh", "motion_smpl.npz", "motion.glb", "preview.mp4",
                 "spec.json", "config.json", "report.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    joints = np.load(out / "joints.npy")
    feats = np.load(out / "features.npy")
    assert joints.shape == (40, 22, 3) and feats.shape == (39, 263)
    report = json.loads((out / "report.json").read_text())
    m = report["metrics"]
    for key in ("traj_err_mean", "traj_err_max", "keyframe_mpjpe", "foot_skating_ratio"):
        assert isinstance(m[key], float) and np.isfinite(m[key]), key
    assert m["traj_err_max"] >= m["traj_err_mean"] >= 0
    for key in ("load_s", "sample_s", "sample_diffusion_s", "sample_optimization_s", "export_s"):
        assert key in report["timings_s"]
    assert report["sampler"]["steps"] == 4 and report["n_keyframes"] == 1
    assert MotionSpec.model_validate_json((out / "spec.json").read_text()) == spec
    assert res.metrics["traj_err_mean"] == pytest.approx(m["traj_err_mean"])
    # Measured, not invented: the report's trajectory error is the distance of the written joints.
    jt = torch.from_numpy(joints)
    idx = [i for i in range(40) if spec.trajectory.mask[i]]
    target = torch.tensor(spec.trajectory.positions)[idx]
    d = ((jt[idx, 0, :] - target)[:, [0, 2]]).norm(dim=-1)
    assert float(d.mean()) == pytest.approx(m["traj_err_mean"], abs=1e-4)
    # features.npy decodes back to the written joints (up to canonicalisation of the start).
    rec = features_to_pose_frames(torch.from_numpy(feats)).numpy()
    assert rec.shape == joints.shape
    # The written joints are a rigid skeleton's, so the BVH plays exactly the same motion.
    from ikmo.motion_model.data.bvh import bvh_world_positions, read_bvh
    from ikmo.motion_model.representation.skeleton import HUMANML3D_22

    parents = np.array(HUMANML3D_22.parents)
    lengths = np.linalg.norm(joints[:, 1:] - joints[:, parents[1:]], axis=-1)
    assert np.abs(lengths - HUMANML3D_22.bone_lengths[1:]).max() < 1e-4
    bvh = read_bvh(out / "motion.bvh")
    back = bvh_world_positions(bvh)[:, [bvh.names.index(n) for n in HUMANML3D_22.joint_names]]
    assert np.linalg.norm(back - joints, axis=-1).max() < 1e-3


def test_same_seed_same_files_and_ablation_switches(weights_dir, tmp_path) -> None:
    from ikmo.tools.generate import generate_motion

    model = load_model(weights_dir)
    spec = _spec(30)
    spec.options.seed = 7
    fmt = ("joints",)
    generate_motion(spec, tmp_path / "a", model=model, formats=fmt)
    generate_motion(spec, tmp_path / "b", model=model, formats=fmt)
    np.testing.assert_array_equal(np.load(tmp_path / "a/joints.npy"), np.load(tmp_path / "b/joints.npy"))
    spec.options.use_controlnet = False
    spec.options.use_optimization = False
    generate_motion(spec, tmp_path / "c", model=model, formats=fmt)
    assert not np.allclose(np.load(tmp_path / "a/joints.npy"), np.load(tmp_path / "c/joints.npy"))
    cfg = json.loads((tmp_path / "c/config.json").read_text())
    assert cfg["sampler"]["use_controlnet"] is False and cfg["sampler"]["optimization"]["enabled"] is False


def test_gradient_only_stage_one_meets_the_path_without_the_projection(tmp_path) -> None:
    """`exact_projection: false` runs stage 1 in the paper's form (L-BFGS, no closed-form projection):
    with the bundled weights it brings the pelvis onto the path and the body into the keyframe, far
    closer than the ControlNet alone."""
    from ikmo.tools.generate import generate_motion

    model = load_model(None)
    spec = _spec(80)
    spec.options.exact_projection = False
    grad = generate_motion(spec, tmp_path / "grad", model=model, formats=("joints",))
    cfg = json.loads((tmp_path / "grad/config.json").read_text())["sampler"]["optimization"]
    assert cfg["projection"] is False and cfg["optimizer"] == "lbfgs" and cfg["final_iterations"] > 0
    # the same switch in the settings (YAML `exact_projection: false`, IKMO_EXACT_PROJECTION) does the same
    from ikmo.tools.toolbox import ToolSettings

    spec.options.exact_projection = True
    generate_motion(spec, tmp_path / "by_settings", model=model, formats=("joints",),
                    settings=ToolSettings(exact_projection=False))
    np.testing.assert_array_equal(np.load(tmp_path / "grad/joints.npy"), np.load(tmp_path / "by_settings/joints.npy"))
    spec.options.use_optimization = False
    alone = generate_motion(spec, tmp_path / "alone", model=model, formats=("joints",))
    assert grad.metrics["traj_err_mean"] < 0.05, grad.metrics
    assert grad.metrics["traj_err_mean"] < 0.2 * alone.metrics["traj_err_mean"], alone.metrics
    assert grad.metrics["keyframe_mpjpe"] < 0.5 * alone.metrics["keyframe_mpjpe"], (grad.metrics, alone.metrics)


def test_the_rig_keeps_the_feet_the_sampler_locked(tmp_path) -> None:
    """Bundled weights, a walk then a bow: the files' rigid-skeleton motion skates about as little as
    the sampler's foot-locked one (the rig projection had raised 0.06 to 0.40)."""
    from ikmo.agents import offline_planner
    from ikmo.agents.offline_parser import parse_request
    from ikmo.motion_model.constraints import MotionSpec
    from ikmo.motion_model.motion_metrics import foot_skating_ratio
    from ikmo.motion_model.sampling import sample
    from ikmo.tools import trajectory as tr
    from ikmo.tools.generate import generate_motion

    req = parse_request("walk forward 3 meters, then bow")
    desc = offline_planner.describe(req)
    plan = offline_planner.plan_trajectory(req, desc)
    n_frames = MotionSpec.from_description(desc).n_frames
    spec = MotionSpec.from_description(desc, trajectory=tr.densify(plan, n_frames))
    model = load_model(None)
    locked = sample(model, [desc.text], [spec.n_frames], [spec.to_control()], seed=0,
                    timed_texts=[desc.timed_texts()])[0].joints
    res = generate_motion(spec, tmp_path / "o", model=model, formats=("joints",))
    final = np.load(res.files["joints"])
    assert res.metrics["foot_skating_ratio"] == foot_skating_ratio(final)
    assert res.metrics["foot_skating_ratio"] <= foot_skating_ratio(locked) + 0.06
