"""Key poses from words: a gesture the text asks for ("raise both hands", "wave") becomes a partial
keyframe on the arms, as a photo of that pose would, so the motion model is held to it.

Measured with the bundled weights before these existed: "stand still and raise both hands above
the head" ended with the wrists 0.26 m *below* the head, and a wave while walking kept the arms
down; the text conditioning alone is too weak for the arms. A key pose constrains only the elbows
and wrists (root-relative, canonical facing), at one time inside its segment; the rest of the body
is the model's. Photos win: a key pose within `PHOTO_CLEARANCE_S` of a photo's keyframe is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ikmo.motion_model.constraints import KeyframePose, MotionDescription
from ikmo.motion_model.representation.skeleton import HUMANML3D_22

from .offline_parser import ParsedRequest

PHOTO_CLEARANCE_S = 0.4
KEY_POSE_CONFIDENCE = 0.8

_L_SHOULDER, _R_SHOULDER, _L_ELBOW, _R_ELBOW, _L_WRIST, _R_WRIST = 16, 17, 18, 19, 20, 21
_UP = np.array([0.0, 1.0, 0.0])
_FORWARD = np.array([0.0, 0.0, 1.0])
_LEFT = np.array([1.0, 0.0, 0.0])  # +X is the body's left


# The training corpus's mean pose (metres, pelvis at the origin, canonical facing): the bundled
# weights' feature Mean (ric rows, minus the mean root height; tests/unit/test_gesture_poses.py
# checks it against them). A standing body, arms down: the key poses move only its arms.
MEAN_POSE = (
    (0.0, 0.0, 0.0), (0.098, -0.022, 0.002), (-0.104, -0.023, 0.0), (0.0, 0.131, -0.009), (0.111, -0.403, 0.036),
    (-0.119, -0.401, 0.033), (0.0, 0.273, -0.016), (0.107, -0.804, -0.077), (-0.111, -0.796, -0.077),
    (0.0, 0.33, -0.017), (0.122, -0.884, 0.027), (-0.129, -0.879, 0.03), (0.0, 0.545, -0.007), (0.044, 0.457, -0.013),
    (-0.046, 0.462, -0.014), (-0.001, 0.643, 0.013), (0.169, 0.456, -0.035), (-0.162, 0.461, -0.037),
    (0.249, 0.275, -0.018), (-0.244, 0.276, -0.022), (0.23, 0.17, 0.08), (-0.227, 0.17, 0.077),
)


def standing_pose() -> np.ndarray:
    """(22, 3) metres: `MEAN_POSE` as an array."""
    return np.array(MEAN_POSE, dtype=np.float64)


def _arm(joints: np.ndarray, side: str, upper_dir: np.ndarray, fore_dir: np.ndarray) -> None:
    """Place one arm's elbow and wrist along the given directions from its shoulder (bone lengths kept)."""
    sh, el, wr = (_L_SHOULDER, _L_ELBOW, _L_WRIST) if side == "left" else (_R_SHOULDER, _R_ELBOW, _R_WRIST)
    lengths = HUMANML3D_22.bone_lengths
    joints[el] = joints[sh] + lengths[el] * upper_dir / np.linalg.norm(upper_dir)
    joints[wr] = joints[el] + lengths[wr] * fore_dir / np.linalg.norm(fore_dir)


def _out(side: str) -> np.ndarray:
    return _LEFT if side == "left" else -_LEFT


# action → (sides, arm shape, where in its segment the pose is struck: fractions 0..1). A raise
# ends up; a wave keeps the hand up through the middle of its segment (the model waves around it).
_UP_AT = (0.8,)
_WAVE_AT = (0.3, 0.6)
_POSES: dict[str, tuple[tuple[str, ...], str, tuple[float, ...]]] = {
    "raise-up-both-hands": (("left", "right"), "up", _UP_AT),
    "raise-up-left-hand": (("left",), "up", _UP_AT),
    "raise-up-right-hand": (("right",), "up", _UP_AT),
    "wave-both-hands": (("left", "right"), "wave", _WAVE_AT),
    "wave-left-hand": (("left",), "wave", _WAVE_AT),
    "wave-right-hand": (("right",), "wave", _WAVE_AT),
    "bye": (("right",), "wave", _WAVE_AT),
    "byebye": (("left", "right"), "wave", _WAVE_AT),
}


def key_pose(action: str, time_s: float) -> KeyframePose | None:
    """The arms' key pose of a gesture at `time_s`, or None for an action without one."""
    if action not in _POSES:
        return None
    sides, shape, _ = _POSES[action]
    j = standing_pose()
    mask = [False] * HUMANML3D_22.n_joints
    for side in sides:
        if shape == "up":  # the arm straight up, a little out and forward: hands above the head
            _arm(j, side, _UP + 0.15 * _out(side) + 0.1 * _FORWARD, _UP + 0.1 * _out(side))
        else:  # a wave: upper arm out and up, forearm up, the hand beside the head
            _arm(j, side, _out(side) + 0.6 * _UP + 0.2 * _FORWARD, _UP + 0.15 * _FORWARD)
        el, wr = (_L_ELBOW, _L_WRIST) if side == "left" else (_R_ELBOW, _R_WRIST)
        mask[el] = mask[wr] = True
    conf = [KEY_POSE_CONFIDENCE if m else 0.0 for m in mask]
    return KeyframePose(time_s=round(time_s, 4), joints=j.round(6).tolist(), joint_mask=mask, confidence=conf,
                        source=f"words:{action}", notes=[f"key pose of '{action}' from the request's words"])


def gesture_keyframes(description: MotionDescription, parsed: ParsedRequest | None = None,
                      photo_times: Sequence[float] = ()) -> list[KeyframePose]:
    """The key poses of the description's gestures (and of gestures done at the same time as a
    segment, from the offline parse when its actions line up with the segments), in time order."""
    segments = description.segments
    concurrent: list[list[str]] = [[] for _ in segments]
    if parsed is not None and len(parsed.actions) == len(segments):
        concurrent = [list(a.concurrent) for a in parsed.actions]
    out: list[KeyframePose] = []
    for seg, extra in zip(segments, concurrent, strict=True):
        for action in [seg.action, *extra]:
            if action not in _POSES:
                continue
            for frac in _POSES[action][2]:
                t = min(seg.start_s + frac * (seg.end_s - seg.start_s), description.duration_s - 0.05)
                if any(abs(t - p) < PHOTO_CLEARANCE_S for p in photo_times):
                    continue
                kf = key_pose(action, t)
                if kf is not None and not any(abs(kf.time_s - o.time_s) < 1e-6 for o in out):
                    out.append(kf)
    return sorted(out, key=lambda k: k.time_s)
