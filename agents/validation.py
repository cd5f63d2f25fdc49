"""Schema and physics checks of the agents' answers before the motion model is called: the spec's
own check, keyframe roots on the trajectory, and which agent is at fault when one fails."""

from __future__ import annotations

import numpy as np

from ikmo.motion_model.constraints import MotionSpec
from ikmo.motion_model.errors import ConstraintError
from ikmo.tools import trajectory as traj_tools

from .state import Agent

# How far (m, in the floor plane) a keyframe's own pelvis may sit from the trajectory at its time.
KEYFRAME_ROOT_TOLERANCE_M = 0.5


def fault_of(message: str) -> Agent:
    """The agent whose answer a constraint error is about."""
    m = message.lower()
    if "keyframe" in m:
        return "keyframe_pose"
    if any(w in m for w in ("trajectory", "speed", "pelvis", "path")):
        return "trajectory"
    return "describe"


def check_spec(spec: MotionSpec) -> None:
    """`MotionSpec.check()` plus every keyframe's pelvis on the trajectory. Raises ConstraintError."""
    spec.check()
    if spec.trajectory is None:
        return
    for i, kf in enumerate(spec.keyframes):
        if kf.root_position is None:
            continue
        p = traj_tools.position_at(spec.trajectory, kf.time_s)
        d = float(np.hypot(p[0] - kf.root_position[0], p[2] - kf.root_position[2]))
        if d > KEYFRAME_ROOT_TOLERANCE_M:
            raise ConstraintError(
                f"keyframe {i} puts the pelvis {d:.2f} m away from the trajectory at {kf.time_s:.2f}s; "
                "move the keyframe in time or change the path"
            )
