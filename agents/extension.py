"""Continuing the previous motion of a chat: "walk forward 3 meters", then "then walk back and bow".

A follow-up that adds actions after the previous ones is re-planned as a whole (the description,
the path from the start), and the previous motion is then kept as the start of the new one
(`MotionPrefix`): the motion model in-paints only what comes after it, from its end
(`long_sampling.sample_long`). That is done only when the new plan really begins with the old
one: the previous segments unchanged at the start (same actions, texts and times), a longer
motion, and the new path over the previous frames where the previous pelvis went. Otherwise the
motion is made anew, as for any other edit.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ikmo.motion_model.constraints import (
    WINDOW_OVERLAP_FRAMES,
    MotionDescription,
    MotionPrefix,
    MotionResult,
    Trajectory,
)

log = logging.getLogger(__name__)

# How far (m, floor plane) the new path may pass from the previous pelvis over the kept frames: the
# previous motion met its own path within millimetres, so anything more means the path was re-planned.
PATH_TOLERANCE_M = 0.15


def continuation(previous: MotionResult | None, description: MotionDescription, n_frames: int,
                 trajectory: Trajectory | None) -> MotionPrefix | None:
    """The previous motion as the prefix of the new one (`n_frames` frames), or None when the new
    plan does not begin with it (module docstring) or its joints file is gone."""
    if previous is None or "joints" not in previous.files:
        return None
    old = previous.spec.description.segments
    new = description.segments
    P = previous.spec.n_frames
    if not old or len(new) <= len(old) or new[:len(old)] != old or not WINDOW_OVERLAP_FRAMES <= P < n_frames:
        return None
    path = Path(previous.files["joints"])
    try:
        joints = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        log.warning("cannot continue the previous motion (%s): %s; making the motion anew", path, e)
        return None
    if joints.shape != (P, 22, 3):
        return None
    if trajectory is not None:
        pos, mask = trajectory.positions_array()[:P], trajectory.mask_array()[:P]
        d = np.hypot(*(pos[mask][:, [0, 2]] - joints[mask, 0][:, [0, 2]]).T)
        if d.size and float(d.max()) > PATH_TOLERANCE_M:
            return None
    return MotionPrefix(joints_path=str(path), n_frames=P)
