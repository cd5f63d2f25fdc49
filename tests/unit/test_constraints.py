"""The shared domain types reject what must never reach the motion model, and keep masks explicit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from ikmo.motion_model.constraints import (
    Arc,
    KeyframePose,
    MotionDescription,
    MotionSpec,
    Trajectory,
    TrajectoryPlan,
    duration_to_frames,
)
from ikmo.motion_model.errors import ConstraintError
from ikmo.motion_model.representation.skeleton import HUMANML3D_22

pytestmark = pytest.mark.unit


def _pose(t: float, **kw: object) -> KeyframePose:
    joints = (HUMANML3D_22.offsets() * 0.5).tolist()
    return KeyframePose(time_s=t, joints=joints, **kw)  # type: ignore[arg-type]


def _walk(n: int, speed: float, fps: float = 20.0) -> Trajectory:
    z = np.arange(n) / fps * speed
    pos = np.stack([np.zeros(n), np.full(n, 0.9), z], 1)
    return Trajectory(positions=pos.tolist(), mask=[True] * n)


def test_spec_round_trips_through_json() -> None:
    desc = MotionDescription(text="a person walks forward", duration_s=3.0)
    spec = MotionSpec.from_description(desc, keyframes=[_pose(1.0)], trajectory=_walk(60, 1.2))
    again = MotionSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
    assert spec.n_frames == 60
    assert json.loads(spec.model_dump_json())["trajectory"]["mask"][0] is True


def test_zero_is_a_real_coordinate_and_masks_are_explicit() -> None:
    desc = MotionDescription(text="a person stands", duration_s=2.0)
    traj = Trajectory(positions=[[0.0, 0.0, 0.0]] * 40, mask=[False] * 39 + [True])
    ctrl = MotionSpec.from_description(desc, trajectory=traj).to_control()
    assert ctrl.traj_mask[:, 0].tolist() == [False] * 39 + [True]
    assert not ctrl.traj_mask[:, 1].any()  # height free unless control_height
    assert ctrl.pose_mask.sum() == 0 and not ctrl.is_empty()


def test_keyframe_lands_on_its_frame_with_partial_mask() -> None:
    mask = [True] * 22
    for j in (1, 2, 4, 5, 7, 8, 10, 11):  # legs unknown (an upper-body photo)
        mask[j] = False
    desc = MotionDescription(text="a person waves", duration_s=4.0)
    ctrl = MotionSpec.from_description(desc, keyframes=[_pose(2.0, joint_mask=mask)]).to_control()
    assert ctrl.keyframe_indices() == [40]
    assert ctrl.pose_mask[40].tolist() == mask
    assert float(ctrl.pose_weight[40, 4]) == 0.0


@pytest.mark.parametrize(
    "bad",
    [
        {"joints": [[0.0, 0.0, 0.0]] * 21},
        {"joints": [[float("nan"), 0.0, 0.0]] * 22},
        {"joint_mask": [False] * 22},
        {"confidence": [1.5] * 22},
    ],
)
def test_keyframe_rejects_bad_values(bad: dict[str, object]) -> None:
    base = {"time_s": 1.0, "joints": HUMANML3D_22.offsets().tolist()}
    with pytest.raises(ValidationError):
        KeyframePose(**{**base, **bad})  # type: ignore[arg-type]


def test_check_refuses_keyframe_after_the_end() -> None:
    desc = MotionDescription(text="a person jumps", duration_s=2.0)
    spec = MotionSpec.from_description(desc, keyframes=[_pose(5.0)])
    with pytest.raises(ConstraintError, match="lasts"):
        spec.check()


def test_check_refuses_superhuman_speed_but_accepts_a_run() -> None:
    desc = MotionDescription(text="a person runs", duration_s=3.0)
    MotionSpec.from_description(desc, trajectory=_walk(60, 3.0)).check()
    with pytest.raises(ConstraintError, match="m/s"):
        MotionSpec.from_description(desc, trajectory=_walk(60, 9.0)).check()


def test_check_refuses_a_trajectory_of_the_wrong_length() -> None:
    desc = MotionDescription(text="a person walks", duration_s=3.0)
    with pytest.raises(ConstraintError, match="resample"):
        MotionSpec.from_description(desc, trajectory=_walk(50, 1.0)).check()


def test_unordered_keyframes_and_segments_are_errors() -> None:
    desc = MotionDescription(text="a person walks", duration_s=4.0)
    with pytest.raises(ConstraintError, match="order"):
        MotionSpec.from_description(desc, keyframes=[_pose(3.0), _pose(1.0)]).check()
    with pytest.raises(ValidationError):
        MotionDescription(text="x", duration_s=4.0, segments=[
            {"action": "walk", "start_s": 0, "end_s": 3}, {"action": "wave", "start_s": 2, "end_s": 4}])


def test_plan_primitives_are_a_closed_discriminated_set() -> None:
    plan = TrajectoryPlan.model_validate({"primitives": [{"kind": "arc", "radius_m": 2, "angle_deg": 90}]})
    assert isinstance(plan.primitives[0], Arc)
    with pytest.raises(ValidationError):
        TrajectoryPlan.model_validate({"primitives": [{"kind": "teleport"}]})


def test_duration_to_frames_clamps_and_rejects_nonsense() -> None:
    assert duration_to_frames(3.0) == 60
    assert duration_to_frames(30.0) == 600  # beyond one 196-frame window: sampled in overlapping windows
    assert duration_to_frames(1000.0) == 2400  # the 120 s limit of a motion
    with pytest.raises(ConstraintError):
        duration_to_frames(float("nan"))
