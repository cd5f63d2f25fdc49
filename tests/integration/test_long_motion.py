"""Motions longer than one model window (196 frames): the real windowed sampler, generate_motion and
the offline agents with a tiny random-weight model; every file read back with its own reader."""

from __future__ import annotations

import json
from pathlib import Path

import bvhio
import imageio_ffmpeg
import numpy as np
import pytest
from helpers import make_context

from ikmo.agents.run import Conversation, raise_if_failed, run_request
from ikmo.agents.state import MotionRequest
from ikmo.eval.bench_long import walk_spec
from ikmo.motion_model.constraints import Arc, KeyframePose, Line, MotionDescription, MotionSpec, TrajectoryPlan
from ikmo.motion_model.data.synthetic import synthetic_walk
from ikmo.motion_model.errors import UsageError
from ikmo.motion_model.long_sampling import plan_windows, sample_long
from ikmo.motion_model.motion_metrics import seam_velocity_jump
from ikmo.tools.generate import generate_motion
from ikmo.tools.toolbox import ToolSettings
from ikmo.tools.trajectory import densify

pytestmark = pytest.mark.integration


def test_a_30s_request_writes_600_frames_and_every_file_agrees(model, tmp_path: Path) -> None:
    spec = walk_spec(30.0)
    res = generate_motion(spec, tmp_path / "o", model=model, settings=ToolSettings())
    out = tmp_path / "o"
    report = json.loads((out / "report.json").read_text())
    assert spec.n_frames == report["n_frames"] == 600
    assert [tuple(w) for w in report["windows"]] == [(w.start, w.end) for w in plan_windows(600, model.max_frames)]
    assert len(report["windows"]) == 4 and report["windows"][-1][1] == 600
    assert report["seams"] == [177, 197, 334, 354, 491, 511]
    assert np.load(out / "joints.npy").shape == (600, 22, 3)
    assert np.load(out / "features.npy").shape == (599, 263)
    smpl = np.load(out / "motion_smpl.npz")
    assert smpl["poses"].shape == (600, 72) and smpl["trans"].shape == (600, 3)
    assert len(bvhio.readAsBvh(str(out / "motion.bvh")).Root.Keyframes) == 600
    n_video, secs = imageio_ffmpeg.count_frames_and_secs(str(out / "preview.mp4"))
    assert n_video == 600 and secs == pytest.approx(30.0, abs=0.1)
    assert MotionSpec.model_validate_json((out / "spec.json").read_text()).n_frames == 600
    # The seams are measured, and the trajectory of the whole request is met across them.
    assert np.isfinite(res.metrics["seam_jump_ratio"]) and res.metrics["traj_err_max"] < 1e-3


def _spanning_spec(seconds: float) -> MotionSpec:
    """A walk along an arc and a straight line with keyframes spread over the motion (some in overlaps)."""
    n = int(round(seconds * 20))
    walk = synthetic_walk(40, 1.0, 0.0)
    pose = (walk[20] - walk[20, :1]).tolist()
    times = [t for t in (3.0, 8.5, 9.2, 16.0, seconds - 1.0) if t < seconds - 0.5]
    plan = TrajectoryPlan(primitives=[Arc(radius_m=6.0, angle_deg=60, turn="left"),
                                      Line(distance_m=0.8 * seconds - 6.3)])
    return MotionSpec(description=MotionDescription(text="a person walks forward", duration_s=seconds),
                      n_frames=n, keyframes=[KeyframePose(time_s=t, joints=pose) for t in times],
                      trajectory=densify(plan, n))


def test_trajectory_and_keyframes_spanning_windows_are_met_as_in_one_window(model, tmp_path: Path) -> None:
    one = generate_motion(_spanning_spec(9.0), tmp_path / "one", model=model, settings=ToolSettings(),
                          formats=("joints",)).metrics
    long = generate_motion(_spanning_spec(25.0), tmp_path / "long", model=model, settings=ToolSettings(),
                           formats=("joints",)).metrics
    report = json.loads((tmp_path / "long" / "report.json").read_text())
    assert len(report["windows"]) == 3 and report["n_keyframes"] == 5
    assert one["traj_err_max"] < 1e-3 and long["traj_err_max"] < 1e-3
    # Keyframes (after the foot lock and the rig projection, as in one window): no worse than there.
    assert long["keyframe_mpjpe"] <= max(2 * one["keyframe_mpjpe"], 0.02), (one, long)
    assert long["keyframe_mpjpe_max"] <= max(2 * one["keyframe_mpjpe_max"], 0.04), (one, long)
    assert long["heading_err_mean_deg"] <= max(2 * one["heading_err_mean_deg"], 10.0), (one, long)


def test_the_same_seed_gives_the_same_long_motion(model) -> None:
    spec = walk_spec(15.0)
    control = spec.to_control()
    a = sample_long(model, spec.description.text, spec.n_frames, control, seed=7)
    b = sample_long(model, spec.description.text, spec.n_frames, control, seed=7)
    c = sample_long(model, spec.description.text, spec.n_frames, control, seed=8)
    assert a.joints.shape == (300, 22, 3) and len(a.windows) == 2
    np.testing.assert_array_equal(a.joints, b.joints)
    np.testing.assert_array_equal(a.features, b.features)
    assert not np.array_equal(a.joints, c.joints)


def test_agents_plan_and_make_a_long_request(model, tmp_path: Path) -> None:
    ctx = make_context(model, critique_rounds=0, preview=False)
    final = run_request(MotionRequest(text="walk forward for 30 seconds", out_dir=str(tmp_path / "a")), ctx)
    result = raise_if_failed(final)
    assert result.spec.n_frames == 600 and np.load(tmp_path / "a" / "joints.npy").shape == (600, 22, 3)
    # Actions that do not fit one window keep their natural lengths (no longer squeezed to 9.8 s), and
    # each segment conditions its own frames, across the windows.
    final = run_request(MotionRequest(text="walk forward 8 meters, wave, then walk back 6 meters",
                                      out_dir=str(tmp_path / "b")), ctx)
    spec = raise_if_failed(final).spec
    assert [s.action for s in spec.description.segments] == ["walk", "wave-right-hand", "walk-back"]
    assert spec.n_frames > 196 and not any("shortened" in n for n in final["notes"])
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    timed = report["sampler"]["timed_texts"]
    assert len(report["windows"]) == 2 and [t["start"] for t in timed][-1] > 196 // 2 and timed[-1]["end"] > 196
    assert np.load(tmp_path / "b" / "joints.npy").shape[0] == spec.n_frames


def test_a_chat_followup_extends_the_motion(model, tmp_path: Path) -> None:
    conv = Conversation(tmp_path / "chat.sqlite", "long", make_context(model, critique_rounds=0, preview=False),
                        tmp_path / "runs")
    first = raise_if_failed(conv.say("walk forward 6 meters"))
    ext = conv.say("then walk back and bow")
    spec = raise_if_failed(ext).spec
    assert [s.action for s in spec.description.segments] == ["walk", "walk-back", "bow"]
    assert spec.description.segments[0] == first.spec.description.segments[0]  # the walk as it was
    assert spec.n_frames > 196 > first.spec.n_frames
    conv.close()


def test_a_followup_that_adds_actions_continues_the_motion_it_had(model, tmp_path: Path) -> None:
    conv = Conversation(tmp_path / "chat.sqlite", "ext", make_context(model, critique_rounds=0, preview=False),
                        tmp_path / "runs")
    first = raise_if_failed(conv.say("walk forward 8 meters"))
    before = np.load(first.files["joints"])
    ext = conv.say("then wave and bow")
    spec = raise_if_failed(ext).spec
    assert spec.prefix is not None and spec.prefix.n_frames == len(before) == first.spec.n_frames
    after = np.load(ext["result"].files["joints"])
    assert after.shape == (spec.n_frames, 22, 3) and spec.n_frames > len(before)
    kept = len(before) - 20  # the last second blends into what follows
    np.testing.assert_allclose(after[:kept], before[:kept], atol=1e-5)  # the motion it had, kept
    assert any("continues the previous motion" in n for n in ext["notes"])
    # The hand-over is no jump: its frames change speed no more than the rest of the motion does.
    jump = seam_velocity_jump(after, [kept, len(before)])
    assert jump["ratio"] < 1.5, jump
    # An edit that changes what was there ("make it slower") is made anew.
    slower = raise_if_failed(conv.say("make it slower"))
    assert slower.spec.prefix is None
    conv.close()


def test_bench_long_prints_ratios_to_the_first_length(weights_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ikmo.cli import _build

    out = tmp_path / "long.json"
    res = CliRunner().invoke(_build(), ["bench", "long", "--weights", str(weights_dir), "--durations", "10,20",
                                        "--repeats", "1", "--no-preview", "--no-memory", "--threads", "1",
                                        "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "| 20 s | 400 (2.00×) | 3 |" in res.output and "reference, one window" in res.output
    rows = json.loads(out.read_text())["rows"]
    assert [r["n_windows"] for r in rows] == [2, 3]
    assert all(len(r["similarity_per_window"]) == r["n_windows"] and np.isfinite(r["seam_ratio"]) for r in rows)
    bad = CliRunner().invoke(_build(), ["bench", "long", "--durations", "10,500", "--out", str(out)])
    assert isinstance(bad.exception, UsageError) and "each must be 0 < seconds <= 120" in str(bad.exception)
