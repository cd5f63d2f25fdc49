"""tools/trajectory.py: pure geometry of the plan primitives (arc length, end heading, speed, timing)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ikmo.motion_model.constraints import (
    Arc,
    Circle,
    Line,
    MotionDescription,
    MotionSpec,
    Stand,
    TrajectoryPlan,
    Waypoints,
    Zigzag,
)
from ikmo.motion_model.errors import ConstraintError
from ikmo.tools import trajectory as tr

pytestmark = pytest.mark.unit


def test_line_forward_length_speed_and_height() -> None:
    plan = TrajectoryPlan(primitives=[Line(distance_m=4.8)])
    t = tr.densify(plan, n_frames=81)  # 4 s at 20 fps
    pos = t.positions_array()
    assert pos.shape == (81, 3) and all(t.mask) and not t.control_height
    np.testing.assert_allclose(pos[0], [0, pos[0, 1], 0], atol=1e-6)
    np.testing.assert_allclose(pos[-1, [0, 2]], [0, 4.8], atol=1e-5)  # faces +Z
    np.testing.assert_allclose(tr.speeds(pos), 1.2, atol=1e-4)  # constant speed
    assert pos[0, 1] == pytest.approx(tr.standing_pelvis_height())
    assert 0.85 < tr.standing_pelvis_height() < 0.95


def test_left_is_plus_x_and_arc_geometry() -> None:
    plan = TrajectoryPlan(primitives=[Arc(radius_m=2.0, angle_deg=90, turn="left")])
    assert tr.plan_length(plan) == pytest.approx(math.pi)
    assert tr.end_heading_deg(plan) == pytest.approx(90.0)
    x, z = tr.end_point_xz(plan)
    assert (x, z) == pytest.approx((2.0, 2.0))  # quarter circle to the left ends at (+r, +r)
    right = TrajectoryPlan(primitives=[Arc(radius_m=2.0, angle_deg=90, turn="right")])
    assert tr.end_point_xz(right) == pytest.approx((-2.0, 2.0))
    assert tr.end_heading_deg(right) == pytest.approx(-90.0)
    pos = tr.densify(plan, 61).positions_array()
    r = np.hypot(pos[:, 0] - 2.0, pos[:, 2])  # every point on the circle around (2, 0)
    np.testing.assert_allclose(r, 2.0, atol=1e-5)
    assert tr.path_length(pos) == pytest.approx(math.pi, rel=1e-3)


def test_circle_returns_to_start_and_lines_follow_heading() -> None:
    plan = TrajectoryPlan(primitives=[Circle(radius_m=1.0, turns=1.0, turn="right")])
    assert tr.end_point_xz(plan) == pytest.approx((0.0, 0.0), abs=1e-9)
    assert tr.end_heading_deg(plan) == pytest.approx(-360.0)
    # turn left 90° on the spot, then 2 m: ends 2 m further along +X; a line does not change heading
    plan2 = TrajectoryPlan(primitives=[Arc(radius_m=0.5, angle_deg=90), Line(distance_m=2.0)])
    assert tr.end_point_xz(plan2) == pytest.approx((2.5, 0.5))
    back = TrajectoryPlan(primitives=[Line(distance_m=1.0, direction_deg=180), Line(distance_m=1.0)])
    assert tr.end_point_xz(back) == pytest.approx((0.0, 0.0), abs=1e-9)
    assert tr.end_heading_deg(back) == 0.0


def test_zigzag_and_waypoints() -> None:
    z = TrajectoryPlan(primitives=[Zigzag(distance_m=4.0, amplitude_m=0.5, n_legs=4)])
    assert tr.end_point_xz(z) == pytest.approx((0.0, 4.0), abs=1e-9)
    pos = tr.densify(z, 101).positions_array()
    assert pos[:, 0].max() == pytest.approx(0.5, abs=0.02) and pos[:, 0].min() == pytest.approx(-0.5, abs=0.02)
    w = TrajectoryPlan(primitives=[Waypoints(points_xz=[(0, 3), (3, 3)])])
    assert tr.plan_length(w) == pytest.approx(6.0)
    assert tr.end_heading_deg(w) == pytest.approx(90.0)


def test_timing_shares_time_and_stands_after_timed_pieces() -> None:
    plan = TrajectoryPlan(primitives=[Line(distance_m=2.0, duration_s=1.0), Stand(), Line(distance_m=1.0)])
    times = tr.piece_times(plan, 5.0)
    assert times == [(0.0, 1.0), (1.0, 3.0), (3.0, 5.0)]
    pos = tr.densify(plan, 101).positions_array()
    assert pos[20, 2] == pytest.approx(2.0) and pos[60, 2] == pytest.approx(2.0)  # stood still 1..3 s
    assert pos[-1, 2] == pytest.approx(3.0)
    timed = TrajectoryPlan(primitives=[Line(distance_m=1.0, duration_s=1.0)])
    p = tr.densify(timed, 61).positions_array()  # 3 s motion: walk 1 s then stand
    assert p[20, 2] == pytest.approx(1.0) and p[-1, 2] == pytest.approx(1.0)


def test_timing_errors_are_clear() -> None:
    with pytest.raises(ConstraintError, match="take 6.00s but the motion lasts 3.00s"):
        tr.piece_times(TrajectoryPlan(primitives=[Stand(duration_s=6.0)]), 3.0)
    with pytest.raises(ConstraintError, match="no time for the untimed"):
        tr.piece_times(TrajectoryPlan(primitives=[Stand(duration_s=3.0), Line(distance_m=1)]), 3.0)
    with pytest.raises(ConstraintError, match="at least 2 frames"):
        tr.densify(TrajectoryPlan(primitives=[Stand()]), 1)


def test_rounding_slack_absorbs_frame_rounding() -> None:
    # 3.03 s of timed pieces in a 61-frame (3.0 s) motion is rounding, not an error.
    plan = TrajectoryPlan(primitives=[Line(distance_m=3.0, duration_s=3.03)])
    pos = tr.densify(plan, 61).positions_array()
    assert pos[-1, 2] == pytest.approx(3.0)


def test_too_fast_plan_fails_spec_check() -> None:
    desc = MotionDescription(text="a person runs forward.", duration_s=2.0)
    traj = tr.densify(TrajectoryPlan(primitives=[Line(distance_m=30.0)]), 40)
    spec = MotionSpec.from_description(desc, trajectory=traj)
    with pytest.raises(ConstraintError, match="pelvis speed"):
        spec.check()


def test_the_path_says_which_way_the_body_faces() -> None:
    """Along the path while walking forwards; the heading kept while side-stepping or walking
    backwards; nothing while standing."""
    circle = tr.densify(TrajectoryPlan(primitives=[Circle(radius_m=1.0, turns=1.0, turn="left")]), n_frames=101)
    f, m = np.asarray(circle.facing), np.asarray(circle.facing_mask)
    assert m.all() and f[0] == pytest.approx(0.0, abs=0.3)
    assert f[-1] - f[0] == pytest.approx(2 * math.pi, abs=0.35)  # unwrapped: a full turn
    pos = circle.positions_array()[:, [0, 2]]
    v = np.diff(pos, axis=0)
    tangent = np.unwrap(np.arctan2(v[:, 0], v[:, 1]))
    np.testing.assert_allclose(f[10:-10], tangent[10:-9], atol=0.05)  # away from the ends: the tangent
    back = tr.densify(TrajectoryPlan(primitives=[Line(distance_m=2.0, direction_deg=180.0), Stand()]), n_frames=80)
    fb, mb = np.asarray(back.facing), np.asarray(back.facing_mask)
    assert mb[:35].all() and not mb[45:].any()  # walking, then standing
    np.testing.assert_allclose(fb[mb], 0.0, atol=1e-6)  # backwards: still facing +Z
    side = tr.densify(TrajectoryPlan(primitives=[Line(distance_m=2.0, direction_deg=90.0)]), n_frames=60)
    np.testing.assert_allclose(np.asarray(side.facing)[np.asarray(side.facing_mask)], 0.0, atol=1e-6)
    turn = tr.densify(TrajectoryPlan(primitives=[Line(distance_m=2.0), Arc(radius_m=0.5, angle_deg=90, turn="right"),
                                                 Line(distance_m=2.0)]), n_frames=90)
    assert np.asarray(turn.facing)[-1] == pytest.approx(-math.pi / 2, abs=1e-3)  # right is −X: facing −90°
