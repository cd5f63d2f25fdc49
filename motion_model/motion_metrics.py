"""Motion quality measures the generator reports about its own output (pure numpy, no scipy).

They live here, below tools/ and eval/, so `tools.generate` can report them without importing the
evaluation stack; `ikmo.eval.metrics` re-exports them for the benchmarks.
Units: joint positions are metres, y up (HumanML3D convention, floor at y = 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ikmo.motion_model.errors import MotionDataError
from ikmo.motion_model.representation.skeleton import FPS, HUMANML3D_22

# Thresholds of OmniControl / GMD: feet within 5 cm of the floor are in contact; a contact foot
# moving faster than 0.5 m/s (2.5 cm per frame at 20 fps) in the ground plane, both in the frame and
# averaged over a 5-frame window, skates.
SKATE_HEIGHT_M = 0.05
SKATE_SPEED_M_S = 0.50
SKATE_WINDOW = 5


def check_positions(x: np.ndarray, what: str) -> np.ndarray:
    """`x` as float64 (..., J, 3) positions; MotionDataError naming `what` if the shape or values are bad."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] != 3:
        raise MotionDataError(f"{what} must be (..., J, 3) positions, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise MotionDataError(f"{what} contains NaN or infinity")
    return x


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along axis 0 with zero padding: scipy's
    `uniform_filter1d(x, window, axis=0, mode="constant", origin=0)` without importing scipy
    (its import costs ~0.4 s on every `ikmo generate`). x: (T, ...) → (T, ...) float64."""
    x = np.asarray(x, dtype=np.float64)
    left = window // 2
    pad = [(left, window - 1 - left)] + [(0, 0)] * (x.ndim - 1)
    c = np.cumsum(np.pad(x, pad), axis=0)
    c = np.concatenate([np.zeros_like(c[:1]), c], axis=0)
    return (c[window:] - c[:-window]) / window


def foot_skating_ratio(joints: np.ndarray, fps: float = FPS, feet: Sequence[int] = (
        HUMANML3D_22.feet_left[1], HUMANML3D_22.feet_right[1]), height_m: float = SKATE_HEIGHT_M,
        speed_m_s: float = SKATE_SPEED_M_S, window: int = SKATE_WINDOW) -> float:
    """Share of frame transitions in which a foot skates, OmniControl's definition.

    `calculate_skating_ratio` of neu-vi/OmniControl (from GMD): the feet are the toe joints 10 and 11
    (L_foot, R_foot); a foot is in contact over a transition t→t+1 when its height is below 5 cm in
    both frames; it skates when in contact and its xz speed exceeds 0.5 m/s in that transition and
    also in the 5-frame moving average (zero-padded at the ends, as scipy `uniform_filter1d` with
    mode="constant"). A transition counts when either foot skates; ratio = count / (T - 1).
    Heights are absolute (floor at y = 0, as HumanML3D places it).

    joints: (T, J, 3) metres, y up, T >= 2. Returns a ratio in [0, 1].
    """
    joints = check_positions(joints, "joints")
    if joints.ndim != 3 or joints.shape[0] < 2:
        raise MotionDataError(f"foot skating needs (T>=2, J, 3) joints, got {joints.shape}")
    f = joints[:, list(feet), :]  # (T, 2, 3)
    speed = np.linalg.norm(f[1:, :, [0, 2]] - f[:-1, :, [0, 2]], axis=-1) * fps  # (T-1, 2)
    speed_avg = moving_average(speed, window)
    h = f[:, :, 1]
    contact = (h[:-1] < height_m) & (h[1:] < height_m)
    skating = contact & (speed > speed_m_s) & (speed_avg > speed_m_s)
    return float(skating.any(axis=1).mean())


SEAM_RADIUS = 2  # frames either side of a seam in which a jump counts as the seam's


def velocity_jumps(joints: np.ndarray, fps: float = FPS) -> np.ndarray:
    """Per-frame change of joint velocity, m/s: mean over joints of ‖v_{t+1} − v_t‖ with
    v_t = (x_{t+1} − x_t)·fps. joints: (T, J, 3) metres, T ≥ 3 → (T − 2,); entry i is centred on frame i + 1."""
    joints = check_positions(joints, "joints")
    if joints.ndim != 3 or joints.shape[0] < 3:
        raise MotionDataError(f"velocity jumps need (T>=3, J, 3) joints, got {joints.shape}")
    v = np.diff(joints, axis=0) * fps
    return np.linalg.norm(np.diff(v, axis=0), axis=-1).mean(-1)


def seam_velocity_jump(joints: np.ndarray, seams: Sequence[int], fps: float = FPS,
                       radius: int = SEAM_RADIUS) -> dict[str, float]:
    """How visible the seams of a motion stitched from windows are.

    The largest velocity jump within ±radius frames of each seam frame (`seam_mean` / `seam_max`
    over the seams, m/s) against the same statistic everywhere else (`inside_mean`: the largest jump
    of every (2·radius + 1)-frame stretch farther from any seam). `ratio` = seam_mean / inside_mean:
    about 1 means a seam cannot be told from the motion's own changes of speed. NaN without seams.
    joints: (T, J, 3) metres.
    """
    jumps = velocity_jumps(joints, fps)  # entry i ↔ frame i + 1
    frames = np.arange(1, len(jumps) + 1)
    k = 2 * radius + 1
    padded = np.pad(jumps, radius, mode="edge")
    local_max = np.lib.stride_tricks.sliding_window_view(padded, k).max(-1)  # (T − 2,) centred on each frame
    seams = [s for s in seams if 1 <= s <= len(jumps)]
    nan = float("nan")
    if not seams:
        return {"seam_mean": nan, "seam_max": nan, "inside_mean": float(local_max.mean()), "ratio": nan}
    near = np.zeros(len(jumps), dtype=bool)
    for s in seams:
        near |= np.abs(frames - s) <= 2 * radius
    at_seams = local_max[np.asarray(seams) - 1]
    inside = float(local_max[~near].mean()) if (~near).any() else nan
    seam_mean = float(at_seams.mean())
    return {"seam_mean": seam_mean, "seam_max": float(at_seams.max()), "inside_mean": inside,
            "ratio": seam_mean / inside if inside > 0 else nan}
