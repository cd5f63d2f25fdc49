"""Trajectory geometry: a parametric `TrajectoryPlan` (closed set of primitives) → a dense pelvis path.

Pure geometry, no model, no agents. Conventions (docs/architecture.md): metres, y up, the character starts
at the origin facing +Z, its left is +X. A heading θ (radians) is measured from +Z towards +X, so
a left turn increases θ and the travel direction is (sin θ, cos θ) in (x, z).

How primitives chain:
- `Line` and `Zigzag` move relative to the current heading (`direction_deg` 0 = forward, +90 = left,
  180 = backwards) and do **not** change it: a side-step or a walk backwards keeps the facing.
- `Arc` and `Circle` turn the heading by their angle.
- `Waypoints` are absolute (x, z) points in the start frame; afterwards the heading is the direction
  of the last leg.
- `Stand` stays put.

Facing: the dense trajectory also says which way the body faces (`Trajectory.facing`): along the
path while walking forwards (lines, arcs, circles, waypoints, forward zigzags), the heading kept
while a `Line` or `Zigzag` moves sideways or backwards; nothing while standing or barely moving.

Timing: a primitive with `duration_s` takes that long; those with None share the rest of the motion
evenly. If all durations are given and sum to less than the motion, the pelvis stands still for the
rest. Within a primitive the pelvis moves at constant speed along the path (arc-length
parameterisation), so the speed of a piece is its length divided by its duration.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ikmo.motion_model.constraints import (
    Arc,
    Circle,
    Line,
    Primitive,
    Stand,
    Trajectory,
    TrajectoryPlan,
    Waypoints,
    Zigzag,
)
from ikmo.motion_model.errors import ConstraintError
from ikmo.motion_model.representation.skeleton import FPS, HUMANML3D_22, Skeleton

# Height of the ankle joint above the floor in a standing pose (HumanML3D puts the floor at the
# lowest joint; measured ~0.09 m on the HumanML3D fixture clip 012314).
ANKLE_HEIGHT_M = 0.09
ROUNDING_SLACK_S = 2 / FPS

# Below this pelvis speed the path says nothing about facing (standing, shuffling, turning on the spot).
FACING_MIN_SPEED_M_S = 0.3
# The path's tangent is averaged over ± this many frames (0.25 s at 20 fps): a zigzag's or a
# square's corners become turns a walker can make.
FACING_SMOOTH_FRAMES = 5

# Typical pelvis speeds, m/s, for choosing a duration or a distance that looks natural.
TYPICAL_SPEED_M_S: dict[str, float] = {"stand": 0.0, "slow": 0.8, "walk": 1.2, "jog": 2.2, "run": 3.0, "dash": 5.0}


def standing_pelvis_height(skeleton: Skeleton = HUMANML3D_22) -> float:
    """Pelvis height (metres) of the skeleton standing straight: mean leg length + ankle height."""
    hip_knee_ankle = [skeleton.bone_lengths[i] for i in skeleton.leg_joints]
    other_leg = [skeleton.bone_lengths[skeleton.mirror_map[i]] for i in skeleton.leg_joints]
    return float((sum(hip_knee_ankle) + sum(other_leg)) / 2 + ANKLE_HEIGHT_M)


@dataclass(frozen=True)
class _Piece:
    """One primitive made concrete: length (m), `at(u)` → (x, z) for u in [0, 1] at constant speed,
    and the heading (rad) after it."""

    length: float
    at: Callable[[np.ndarray], np.ndarray]
    end_heading: float
    # How far (rad) the travel direction is turned from the facing: 0 walking forwards, π backwards,
    # ±π/2 side-stepping; None for a piece that stands.
    travel_offset: float | None = 0.0


def _heading_vec(theta: float) -> np.ndarray:
    return np.array([math.sin(theta), math.cos(theta)])


def _polyline_piece(points: np.ndarray, end_heading: float | None, start_heading: float) -> _Piece:
    """points: (K, 2) xz including the start point; constant speed along the polyline."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    length = float(cum[-1])
    if end_heading is None:
        moving = np.flatnonzero(seg > 1e-9)
        if len(moving):
            d = points[moving[-1] + 1] - points[moving[-1]]
            end_heading = math.atan2(d[0], d[1])
        else:
            end_heading = start_heading

    def at(u: np.ndarray) -> np.ndarray:
        if length <= 1e-12:
            return np.repeat(points[:1], len(u), axis=0)
        s = np.clip(u, 0.0, 1.0) * length
        return np.stack([np.interp(s, cum, points[:, 0]), np.interp(s, cum, points[:, 1])], axis=1)

    return _Piece(length, at, end_heading)


def _arc_piece(start: np.ndarray, theta0: float, radius: float, angle_rad: float, turn: str) -> _Piece:
    sign = 1.0 if turn == "left" else -1.0

    def at(u: np.ndarray) -> np.ndarray:
        theta = theta0 + sign * np.clip(u, 0.0, 1.0) * angle_rad
        # ∫ (sin θ, cos θ) ds with θ = θ0 ± s/r, closed form.
        x = sign * radius * (math.cos(theta0) - np.cos(theta))
        z = sign * radius * (np.sin(theta) - math.sin(theta0))
        return start + np.stack([x, z], axis=1)

    return _Piece(radius * angle_rad, at, theta0 + sign * angle_rad)


def _piece(prim: Primitive, start: np.ndarray, theta: float) -> _Piece:
    if isinstance(prim, Line):
        d = _heading_vec(theta + math.radians(prim.direction_deg))
        line = _polyline_piece(np.stack([start, start + d * prim.distance_m]), theta, theta)
        return replace(line, travel_offset=math.radians(prim.direction_deg))
    if isinstance(prim, Arc):
        return _arc_piece(start, theta, prim.radius_m, math.radians(prim.angle_deg), prim.turn)
    if isinstance(prim, Circle):
        return _arc_piece(start, theta, prim.radius_m, 2 * math.pi * prim.turns, prim.turn)
    if isinstance(prim, Zigzag):
        ang = theta + math.radians(prim.direction_deg)
        fwd, left = _heading_vec(ang), _heading_vec(ang + math.pi / 2)
        k = np.arange(prim.n_legs + 1)
        lateral = np.where(k % 2 == 1, 1.0, -1.0) * prim.amplitude_m
        lateral[0] = lateral[-1] = 0.0
        pts = start + np.outer(k / prim.n_legs * prim.distance_m, fwd) + np.outer(lateral, left)
        return replace(_polyline_piece(pts, theta, theta), travel_offset=math.radians(prim.direction_deg))
    if isinstance(prim, Waypoints):
        pts = np.vstack([start[None], np.asarray(prim.points_xz, dtype=np.float64).reshape(-1, 2)])
        return _polyline_piece(pts, None, theta)
    if isinstance(prim, Stand):
        return replace(_polyline_piece(np.stack([start, start]), theta, theta), travel_offset=None)
    raise ConstraintError(f"unknown trajectory primitive {type(prim).__name__}; use line, arc, circle, "
                          "zigzag, waypoints or stand")


def _pieces(plan: TrajectoryPlan) -> list[_Piece]:
    out, start, theta = [], np.zeros(2), 0.0
    for prim in plan.primitives:
        p = _piece(prim, start, theta)
        out.append(p)
        start, theta = p.at(np.array([1.0]))[0], p.end_heading
    return out


def plan_length(plan: TrajectoryPlan) -> float:
    """Total path length of the plan, metres."""
    return float(sum(p.length for p in _pieces(plan)))


def end_heading_deg(plan: TrajectoryPlan) -> float:
    """Heading after the plan, degrees from +Z towards +X (left turns positive), not wrapped."""
    return math.degrees(_pieces(plan)[-1].end_heading)


def end_point_xz(plan: TrajectoryPlan) -> tuple[float, float]:
    """(x, z) metres where the plan ends."""
    start = np.zeros(2)
    theta = 0.0
    for prim in plan.primitives:
        p = _piece(prim, start, theta)
        start, theta = p.at(np.array([1.0]))[0], p.end_heading
    return float(start[0]), float(start[1])


def piece_times(plan: TrajectoryPlan, duration_s: float) -> list[tuple[float, float]]:
    """(start_s, end_s) of each primitive within a motion of `duration_s` seconds.

    Raises ConstraintError when the given durations exceed the motion.
    """
    fixed = sum(p.duration_s or 0.0 for p in plan.primitives)
    n_free = sum(p.duration_s is None for p in plan.primitives)
    # Durations in seconds rarely land on whole frames: an overshoot of up to 2 frames is rounding,
    # absorbed by scaling the timed pieces.
    scale = 1.0
    if duration_s < fixed <= duration_s + ROUNDING_SLACK_S and n_free == 0:
        scale, fixed = duration_s / fixed, duration_s
    if fixed > duration_s + 1e-6:
        raise ConstraintError(
            f"the trajectory pieces take {fixed:.2f}s but the motion lasts {duration_s:.2f}s; "
            "shorten the pieces or lengthen the motion"
        )
    free_each = (duration_s - fixed) / n_free if n_free else 0.0
    if n_free and free_each <= 1e-6:
        raise ConstraintError(
            f"the timed trajectory pieces fill all {duration_s:.2f}s and leave no time for the untimed ones; "
            "lengthen the motion or drop a piece"
        )
    times, t = [], 0.0
    for p in plan.primitives:
        d = p.duration_s * scale if p.duration_s is not None else free_each
        times.append((t, t + d))
        t += d
    return times


def densify(
    plan: TrajectoryPlan,
    n_frames: int,
    fps: float = FPS,
    pelvis_height: float | None = None,
) -> Trajectory:
    """Sample `plan` at `fps` into a dense trajectory of `n_frames` frames (frame i at time i/fps).

    Returns a `Trajectory` whose positions are (n_frames, 3) metres (y = `pelvis_height`, default the
    skeleton's standing pelvis height, not constrained: `control_height=False`) and whose mask is
    all True.
    """
    if n_frames < 2:
        raise ConstraintError(f"a trajectory needs at least 2 frames, got {n_frames}")
    duration = (n_frames - 1) / fps
    pieces = _pieces(plan)
    times = piece_times(plan, duration)
    t = np.arange(n_frames) / fps
    xz = np.zeros((n_frames, 2))
    # Frames after the last piece (all pieces timed and shorter than the motion) stand at its end.
    xz[:] = pieces[-1].at(np.array([1.0]))[0]
    offset = np.full(n_frames, np.nan)  # travel offset per frame; NaN: standing
    for piece, (t0, t1) in zip(pieces, times, strict=True):
        sel = (t >= t0 - 1e-9) & (t <= t1 + 1e-9)
        if sel.any():
            xz[sel] = piece.at((t[sel] - t0) / max(t1 - t0, 1e-9))
            offset[sel] = np.nan if piece.travel_offset is None else piece.travel_offset
    y = standing_pelvis_height() if pelvis_height is None else pelvis_height
    pos = np.stack([xz[:, 0], np.full(n_frames, y), xz[:, 1]], axis=1)
    facing, facing_mask = path_facing(xz, offset, fps)
    return Trajectory(plan=plan, fps=fps, positions=pos.round(6).tolist(), mask=[True] * n_frames,
                      control_height=False, facing=facing.round(6).tolist(), facing_mask=facing_mask.tolist())


def path_facing(xz: np.ndarray, travel_offset: np.ndarray, fps: float = FPS) -> tuple[np.ndarray, np.ndarray]:
    """Which way the body faces along a dense path: the tangent's heading minus the travel offset.

    xz: (T, 2) metres; travel_offset: (T,) radians per frame (NaN where the pelvis stands). Returns
    facing (T,) radians from +Z towards +X, unwrapped and starting in [-π, π], and its mask (T,): frames
    moving faster than `FACING_MIN_SPEED_M_S` and not standing. The tangent is averaged over
    ±`FACING_SMOOTH_FRAMES` frames.
    """
    T = xz.shape[0]
    step = np.diff(xz, axis=0)
    speed = np.linalg.norm(step, axis=1) * fps
    # Velocity of frame n: the mean of the steps around it (central difference; one-sided at the ends).
    vel = np.zeros((T, 2))
    vel[1:] += step
    vel[:-1] += step
    k = FACING_SMOOTH_FRAMES
    kernel = np.ones(2 * k + 1)
    smooth = np.stack([np.convolve(np.pad(vel[:, c], k, mode="edge"), kernel, mode="valid") for c in (0, 1)], axis=1)
    frame_speed = np.zeros(T)
    frame_speed[1:] = np.maximum(frame_speed[1:], speed)
    frame_speed[:-1] = np.maximum(frame_speed[:-1], speed)
    mask = (frame_speed > FACING_MIN_SPEED_M_S) & np.isfinite(travel_offset) & (np.linalg.norm(smooth, axis=1) > 1e-9)
    facing = np.zeros(T)
    if mask.any():
        tangent = np.arctan2(smooth[:, 0], smooth[:, 1])
        raw = np.where(mask, tangent - np.nan_to_num(travel_offset), 0.0)
        idx = np.flatnonzero(mask)
        facing[idx] = np.unwrap(raw[idx])
        facing[idx] -= 2 * np.pi * np.round(facing[idx[0]] / (2 * np.pi))  # start within [-π, π]
    return facing, mask


def speeds(positions: np.ndarray, fps: float = FPS) -> np.ndarray:
    """Ground-plane pelvis speed per frame step, m/s. positions: (T, 3) metres → (T-1,)."""
    pos = np.asarray(positions, dtype=np.float64)
    return np.linalg.norm(np.diff(pos[:, [0, 2]], axis=0), axis=1) * fps


def path_length(positions: np.ndarray) -> float:
    """Ground-plane length (m) of a dense path. positions: (T, 3) metres."""
    pos = np.asarray(positions, dtype=np.float64)
    return float(np.linalg.norm(np.diff(pos[:, [0, 2]], axis=0), axis=1).sum())


def position_at(trajectory: Trajectory, time_s: float) -> np.ndarray:
    """(3,) pelvis position at `time_s` (nearest frame), metres."""
    pos = trajectory.positions_array()
    f = min(max(int(round(time_s * trajectory.fps)), 0), len(pos) - 1)
    return pos[f]
