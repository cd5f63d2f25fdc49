"""Every expectation check of the agent evaluation (`eval/agents/expectations.py`) on outcomes built
by hand: one that meets the expectation passes, one that violates it fails and says what came out.
And the case files: a bad one is an error naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ikmo.eval.agents.cases import Expectations, load_cases, load_file
from ikmo.eval.agents.expectations import Check, Outcome, PhotoTruth, check_case, facing_vs_travel
from ikmo.motion_model.constraints import (
    Arc,
    Circle,
    KeyframePose,
    Line,
    MotionDescription,
    MotionSpec,
    Segment,
    TrajectoryPlan,
)
from ikmo.motion_model.errors import InputFileError
from ikmo.motion_model.representation.skeleton import HUMANML3D_22
from ikmo.tools.trajectory import densify

pytestmark = pytest.mark.unit
FPS = 20.0


def rest_pose() -> np.ndarray:
    """(22, 3) the skeleton's rest pose, pelvis at 0.9 m, facing +Z, arms down."""
    off = HUMANML3D_22.offsets()
    j = np.zeros((22, 3))
    for i, p in enumerate(HUMANML3D_22.parents):
        j[i] = off[i] if p < 0 else j[p] + off[i]
    return j + np.array([0.0, 0.9, 0.0])


def turn(pose: np.ndarray, yaw_deg: float) -> np.ndarray:
    """Rotate a pose about its pelvis (y axis) by yaw (+ = left, +Z → +X)."""
    a = np.radians(yaw_deg)
    c, s = np.cos(a), np.sin(a)
    p = pose - pose[0]
    x, z = p[..., 0], p[..., 2]
    out = p.copy()
    out[..., 0], out[..., 2] = c * x + s * z, -s * x + c * z
    return out + pose[0]


def walk(n: int = 60, speed: float = 1.0, direction_deg: float = 0.0, body_yaw_deg: float | None = None
         ) -> np.ndarray:
    """(n, 22, 3): the rest pose gliding along `direction_deg` at `speed`, turned to `body_yaw_deg`
    (default: facing where it goes)."""
    a = np.radians(direction_deg)
    body = turn(rest_pose(), direction_deg if body_yaw_deg is None else body_yaw_deg)
    t = np.arange(n) / FPS
    shift = np.stack([np.sin(a) * speed * t, np.zeros(n), np.cos(a) * speed * t], axis=1)
    return body[None] + shift[:, None]


def spec_of(plan: TrajectoryPlan | None, duration: float = 3.0, actions: tuple[str, ...] = ("walk",),
            style: str | None = None, keyframe_times: tuple[float, ...] = ()) -> MotionSpec:
    n = len(actions)
    segs = [Segment(action=a, start_s=duration * i / n, end_s=duration * (i + 1) / n) for i, a in enumerate(actions)]
    desc = MotionDescription(text="a person " + ", then ".join(actions), duration_s=duration, segments=segs,
                             style=style)
    kfs = [KeyframePose(time_s=t, joints=(rest_pose() - rest_pose()[0]).tolist()) for t in keyframe_times]
    traj = densify(plan, int(round(duration * FPS))) if plan is not None else None
    return MotionSpec.from_description(desc, trajectory=traj, keyframes=kfs)


def outcome(**kw) -> Outcome:  # noqa: ANN003
    kw.setdefault("status", "ok")
    return Outcome(**kw)


def run(expect: dict, o: Outcome) -> list[Check]:
    return check_case(Expectations.model_validate(expect), o)


def passes(expect: dict, o: Outcome) -> bool:
    return all(c.ok for c in run(expect, o))


def failed(expect: dict, o: Outcome) -> list[Check]:
    bad = [c for c in run(expect, o) if not c.ok]
    assert bad, f"{expect} should fail"
    assert all(c.expected and c.got for c in bad)  # every unmet expectation says what and what came out
    return bad


# --------------------------------------------------------------------------- status and text


def test_status() -> None:
    assert passes({"status": "ok"}, outcome())
    bad = failed({"status": "ok"}, outcome(status="failed", error="the trajectory asks for 51 m/s"))
    assert "51 m/s" in bad[0].got
    assert passes({"status": "question"}, outcome(status="question", question="How should I change it?"))
    failed({"status": "question"}, outcome())
    assert passes({"status": "any"}, outcome(status="failed", error="x"))


def test_says_not_says_error_and_question() -> None:
    o = outcome(answer="Made a motion: a person walks.", notes=["ignored (not a motion): 'juggling'"])
    assert passes({"says": ["juggl"]}, o)
    assert passes({"says": ["bicycle|juggl"]}, o)
    failed({"says": ["backflip"]}, o)
    assert passes({"says_any": ["backflip", "walks"]}, o)
    failed({"says_any": ["backflip", "swim"]}, o)
    failed({"not_says": ["juggling"]}, o)
    err = outcome(status="failed", error="the trajectory asks for a pelvis speed of 51.3 m/s (limit 8.0)")
    assert passes({"status": "failed", "error_contains": ["m/s"]}, err)
    failed({"status": "failed", "error_contains": ["duration"]}, err)
    failed({"status": "failed", "error_contains": ["m/s"]}, outcome(status="failed", error="line one\nline two m/s"))
    q = outcome(status="question", question="I can't make that motion: no motion found. How should I change it?")
    assert passes({"status": "question", "question_contains": ["how should"]}, q)
    failed({"status": "question", "question_contains": ["which direction"]}, q)


# --------------------------------------------------------------------------- the spec


def test_actions_in_order_absent_count_segments() -> None:
    o = outcome(spec=spec_of(None, actions=("walk", "wave-right-hand", "bow")))
    assert passes({"actions": ["walk", "wave", "bow"]}, o)
    assert passes({"actions": ["run|walk", "bow"]}, o)
    bad = failed({"actions": ["bow", "walk"]}, o)
    assert "wave-right-hand" in bad[0].got
    failed({"actions": ["walk", "jump"]}, o)
    failed({"actions": ["walk"]}, outcome(status="failed"))  # no spec, no actions
    assert passes({"actions_absent": ["jump"]}, o)
    failed({"actions_absent": ["wave"]}, o)
    assert passes({"segments_min": 3}, o)
    failed({"segments_min": 4}, o)
    jumps = outcome(spec=spec_of(None, actions=("jump", "jump", "jump")))
    assert passes({"count": {"action": "jump", "n": 3}}, jumps)
    failed({"count": {"action": "jump", "n": 2}}, jumps)


def test_style_duration_keyframe_times() -> None:
    o = outcome(spec=spec_of(None, duration=4.0, style="old", keyframe_times=(2.0, 3.9)))
    assert passes({"style": "elderly|old", "duration_s": [3.8, 4.2], "keyframe_times": [2.0, 3.95]}, o)
    failed({"style": "happy"}, o)
    failed({"duration_s": [5.0, 6.0]}, o)
    failed({"keyframe_times": [1.0, 3.95]}, o)
    failed({"keyframe_times": [2.0]}, o)  # a keyframe too many


def test_path_length_displacement_direction_turn_shape() -> None:
    line = outcome(spec=spec_of(TrajectoryPlan(primitives=[Line(distance_m=3.0)])))
    assert passes({"path": {"length_m": [2.9, 3.1], "displacement_m": [2.9, 3.1], "direction_deg": [-5, 5],
                            "net_turn_deg": [-1, 1], "shape": ["line"], "stands": False}}, line)
    bad = failed({"path": {"length_m": [3.6, 4.4]}}, line)
    assert bad[0].got == "3.00 m"
    failed({"path": {"direction_deg": [80, 100]}}, line)
    failed({"path": {"shape": ["arc"]}}, line)
    failed({"path": {"stands": True}}, line)
    back = outcome(spec=spec_of(TrajectoryPlan(primitives=[Line(distance_m=2.0, direction_deg=180)])))
    assert passes({"path": {"direction_deg": [170, 190]}}, back)  # 180 = -180
    arc = outcome(spec=spec_of(TrajectoryPlan(primitives=[Arc(radius_m=1.0, angle_deg=90, turn="right")])))
    assert passes({"path": {"net_turn_deg": [-95, -85], "net_turn_abs_deg": [85, 95], "shape": ["arc"]}}, arc)
    failed({"path": {"net_turn_deg": [85, 95]}}, arc)
    circle = outcome(spec=spec_of(TrajectoryPlan(primitives=[Circle(radius_m=1.0)]), duration=8.0))
    assert passes({"path": {"length_m": [6.0, 6.6], "displacement_m": [0, 0.1]}}, circle)
    failed({"path": {"displacement_m": [1.0, 2.0]}}, circle)
    assert passes({"path": {"stands": True}}, outcome(spec=spec_of(None)))
    failed({"path": {"length_m": [1, 2]}}, outcome(status="failed"))


# --------------------------------------------------------------------------- the motion


def test_pelvis_travel_displacement_duration() -> None:
    o = outcome(joints=walk(60, speed=1.0))
    assert passes({"motion": {"pelvis_travel_m": [2.8, 3.1], "displacement_m": [2.8, 3.1],
                              "duration_s": [2.9, 3.1]}}, o)
    bad = failed({"motion": {"pelvis_travel_m": [3.6, 4.4]}}, o)
    assert "2.95 m" in bad[0].got
    failed({"motion": {"displacement_m": [0, 0.5]}}, o)
    failed({"motion": {"duration_s": [5, 6]}}, o)
    failed({"motion": {"pelvis_travel_m": [0, 9]}}, outcome(status="failed"))  # no motion


def test_heading_change() -> None:
    straight = outcome(joints=walk(40))
    assert passes({"motion": {"heading_change_deg": [-5, 5]}}, straight)
    turning = np.stack([turn(rest_pose(), 90.0 * min(max(i - 10, 0), 20) / 20) for i in range(40)])
    assert passes({"motion": {"heading_change_deg": [85, 95]}}, outcome(joints=turning))
    failed({"motion": {"heading_change_deg": [-95, -85]}}, outcome(joints=turning))


def test_facing_the_direction_of_travel() -> None:
    forwards = outcome(joints=walk(60, direction_deg=90))  # walks left, facing left
    assert passes({"motion": {"faces_travel_max_deg": 20}}, forwards)
    sideways = outcome(joints=walk(60, direction_deg=0, body_yaw_deg=90))  # slides forward facing left
    bad = failed({"motion": {"faces_travel_max_deg": 45}}, sideways)
    assert bad[0].got.startswith("90°")
    backwards = outcome(joints=walk(60, body_yaw_deg=180))
    assert facing_vs_travel(backwards.joints, FPS)[0] == pytest.approx(180, abs=1)
    failed({"motion": {"faces_travel_max_deg": 45}}, outcome(joints=walk(60, speed=0.1)))  # never moves fast


def test_wrist_above_head() -> None:
    down = np.repeat(rest_pose()[None], 40, axis=0)
    up = down.copy()
    up[20:, 20, 1] = up[20:, 15, 1] + 0.2  # left wrist above the head from 1 s
    up[30:, 21, 1] = up[30:, 15, 1] + 0.2  # right wrist from 1.5 s
    o = outcome(joints=up)
    assert passes({"motion": {"wrist_above_head": {"hand": "both", "at_end": True}}}, o)
    assert passes({"motion": {"wrist_above_head": {"hand": "left", "at_s": 1.2}}}, o)
    failed({"motion": {"wrist_above_head": {"hand": "right", "at_s": 1.0}}}, o)
    assert passes({"motion": {"wrist_above_head": {"hand": "either", "during": [0.9, 1.1]}}}, o)
    failed({"motion": {"wrist_above_head": {"hand": "both", "during": [0.0, 1.4]}}}, o)
    bad = failed({"motion": {"wrist_above_head": {"hand": "both"}}}, outcome(joints=down))
    assert "cm" in bad[0].got


def test_keyframe_mpjpe_against_the_photo_truth() -> None:
    truth = rest_pose()
    joints = walk(40, direction_deg=90)  # the same pose, facing left: facing is aligned away
    assert passes({"motion": {"keyframe_mpjpe_max_m": 0.01}}, outcome(joints=joints, photos=[PhotoTruth(truth, 1.0)]))
    bent = truth.copy()
    bent[18:22] += np.array([0.0, 0.3, 0.2])  # arms raised in the photo
    bad = failed({"motion": {"keyframe_mpjpe_max_m": 0.05}}, outcome(joints=joints, photos=[PhotoTruth(bent, 1.0)]))
    assert "photo" in bad[0].got
    legs = truth.copy()
    legs[[4, 5, 7, 8, 10, 11]] += 0.5  # an upper-body photo does not score the legs
    assert passes({"motion": {"keyframe_mpjpe_max_m": 0.01}},
                  outcome(joints=joints, photos=[PhotoTruth(legs, 1.0, "upper")]))
    failed({"motion": {"keyframe_mpjpe_max_m": 0.01}}, outcome(joints=joints, photos=[PhotoTruth(legs, 1.0)]))
    failed({"motion": {"keyframe_mpjpe_max_m": 0.5}}, outcome(joints=joints, photos=[PhotoTruth(truth, None)]))


def test_constraint_errors_foot_skating_similarity() -> None:
    o = outcome(joints=walk(20), metrics={"traj_err_mean": 0.05, "keyframe_mpjpe": 0.3, "foot_skating_ratio": 0.3},
                text_similarity=0.4)
    assert passes({"motion": {"traj_err_max_m": 0.25, "text_similarity_min": 0.3}}, o)
    failed({"motion": {"traj_err_max_m": 0.01}}, o)
    failed({"motion": {"keyframe_err_max_m": 0.15}}, o)
    failed({"motion": {"foot_skating_max": 0.2}}, o)
    failed({"motion": {"text_similarity_min": 0.5}}, o)
    assert passes({"motion": {"keyframe_err_max_m": 0.15}}, outcome(joints=walk(20)))  # no keyframe: not measured


def test_vs_previous() -> None:
    plan = TrajectoryPlan(primitives=[Line(distance_m=3.0)])
    first = outcome(spec=spec_of(plan, duration=3.0))
    slower = outcome(spec=spec_of(plan, duration=5.0, actions=("walk", "wave-right-hand")), previous=first)
    assert passes({"vs_previous": {"speed_ratio": [0.5, 0.7], "duration_ratio": [1.6, 1.7],
                                   "actions_added": ["wave"]}}, slower)
    failed({"vs_previous": {"speed_ratio": [1.1, 3.0]}}, slower)
    failed({"vs_previous": {"actions_added": ["walk"]}}, slower)  # not new
    failed({"vs_previous": {"duration_ratio": [0.9, 1.1]}}, outcome(spec=first.spec))  # no previous turn


# --------------------------------------------------------------------------- case files


def test_the_suite_loads() -> None:
    cases = load_cases()
    assert len(cases) >= 80
    assert len({c.category for c in cases}) >= 19
    for c in cases:
        for p in c.request.photos:
            assert c.photo_path(p).is_file() and c.truth_path(p).is_file()
            assert np.load(c.truth_path(p)).shape == (22, 3)


@pytest.mark.parametrize(("body", "field"), [
    ("cases:\n  - id: a\n    category: sequencing\n    request: {text: walk}\n    expect: {path: {lenght_m: [1, 2]}}\n",
     "expect.path.lenght_m"),
    ("cases:\n  - id: a\n    category: nonsense\n    request: {text: walk}\n", "category"),
    ("cases:\n  - id: a\n    category: speeds\n    request: {text: walk}\n    expect: {duration_s: [5, 2]}\n",
     "expect"),
    ("cases:\n  - id: a\n    category: speeds\n", "request"),
])
def test_a_bad_case_file_names_the_file_and_the_field(tmp_path: Path, body: str, field: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(InputFileError) as e:
        load_file(f)
    assert str(f) in str(e.value) and field in str(e.value) and "cases[0]" in str(e.value)


def test_bad_suite_folders(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no case files"):
        load_cases(tmp_path)
    (tmp_path / "a.yaml").write_text("cases:\n  - {id: x, category: styles, request: {text: walk}}\n")
    (tmp_path / "b.yaml").write_text("cases:\n  - {id: x, category: styles, request: {text: run}}\n")
    with pytest.raises(InputFileError, match="also in"):
        load_cases(tmp_path)
    (tmp_path / "b.yaml").write_text("cases:\n  - {id: y, category: photos, request: {text: run, "
                                     "photos: [{path: missing.png}]}}\n")
    with pytest.raises(InputFileError, match=r"request\.photos\.0\.path"):
        load_cases(tmp_path)
    (tmp_path / "b.yaml").write_text("nonsense: 1\ncases: []\n")
    with pytest.raises(InputFileError, match="nonsense"):
        load_cases(tmp_path)
    (tmp_path / "b.yaml").unlink()
    with pytest.raises(InputFileError, match="unknown category"):
        load_cases(tmp_path, category=["dancing"])
    with pytest.raises(InputFileError, match="no case zz"):
        load_cases(tmp_path, case_ids=["zz"])
