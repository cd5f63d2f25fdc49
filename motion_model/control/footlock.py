"""Foot locking: a contact foot stays where it was put down; the leg follows by two-bone IK.

Diffusion models slide their feet (OmniControl's skating ratio: 0.10–0.17 for our model against
0.06–0.07 for the real clips), and animators clean that up by hand. This post-process does it the
way animation tools do:

1. Contact: the toe (HumanML3D joints 10 / 11) is within `contact_height` of the floor; gaps of up
   to `gap_frames` frames between contact frames are closed (generated toe heights flicker across
   the threshold from one frame to the next, which chopped contact into one-frame pieces). Each run
   of contact frames becomes one or more *locks*; a new lock starts where the foot has drifted more
   than `max_drift` from the current anchor (a dragged foot takes short steps rather than one long
   stretch). A contact too brief to land a swing in is passed over by the swing to the next lock.
2. Anchor: the lock's median toe position in the ground plane, or, where a keyframe constrains
   that foot inside the lock, the toe position at the keyframe (so keyframes stay met).
3. The ankle and toe move by the offset (xz) that puts the toe on its anchor, and down to
   `PLANT_HEIGHT` where the toe hovers above it; the ground-plane offset ramps in and out over
   `ramp_frames` frames around the lock so the foot never pops.
4. Between two locks at most `MAX_SWING_FRAMES` apart the foot *steps* from anchor to anchor: a
   swing that rises on its first frame, crosses in the ground plane (smoothstep) and comes down on
   its last, lifted by up to `step_height` (a sine arc). Where fewer than `step_frames` frames
   separate the locks, the swing takes its frames from the end of the first and the start of the
   next. Before, a foot re-anchored within a contact run jumped there in one frame: on the agent
   suite's requests nearly all the skating left after the lock was such jumps of 2–11 m/s
   (bundled weights, CFG 1: 403 of 405 skating foot-transitions). Sliding it along the floor
   instead was tried earlier and skated more (real clip 012314: 0.047 → 0.148); a lifted foot is
   not in contact, and it reads as the quick step it is. Planting every stance toe at its lock's
   lowest height was tried and skated more (30 requests, CFG 2.5: 0.08 against 0.03 with the 3.5 cm
   cap); not lowering it at all left more frames floating (0.49 against 0.41 of frames).
5. Two-bone IK keeps the hip fixed and the thigh and shin lengths, with the knee bending in the
   plane of the original knee. Where the anchor is out of reach, the ankle stops at full reach.

The pelvis and upper body are never moved, so trajectory constraints stay exactly met.
"""

from __future__ import annotations

import numpy as np

from ikmo.motion_model.model_config import FootLockConfig
from ikmo.motion_model.representation.skeleton import HUMANML3D_22

# Between two locks at most this many frames apart the foot is carried on a swing arc from one anchor
# to the next; farther apart, the model's own swing is kept (real swings take 0.3–0.5 s: 6–10 frames).
MAX_SWING_FRAMES = 10
# A locked toe higher than this is lowered to it: a stance foot hovering just under the contact height
# left the whole body in the air (floating frames) whenever the other foot swung.
PLANT_HEIGHT = 0.035


def _leg(ankle: int, toe: int) -> tuple[int, int, int, int]:
    knee = HUMANML3D_22.parents[ankle]
    return HUMANML3D_22.parents[knee], knee, ankle, toe


# (hip, knee, ankle, toe) of HumanML3D's left and right legs, from the skeleton's feet and parents.
LEGS = (_leg(*HUMANML3D_22.feet_left), _leg(*HUMANML3D_22.feet_right))


def contact_locks(toe: np.ndarray, contact: np.ndarray, max_drift: float) -> list[tuple[int, int]]:
    """[(first, last)] frame ranges (inclusive) of locks. toe: (T, 3); contact: (T,) bool."""
    locks = []
    t, T = 0, len(contact)
    while t < T:
        if not contact[t]:
            t += 1
            continue
        start = t
        while t + 1 < T and contact[t + 1] and np.linalg.norm(toe[t + 1, [0, 2]] - toe[start, [0, 2]]) <= max_drift:
            t += 1
        locks.append((start, t))
        t += 1
    return locks


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, target: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """(knee', ankle') for ankle targets. All (N, 3); bone lengths and the knee's bend plane kept.

    The ankle lands on `target` where it is within reach (|thigh| − |shin| < d < |thigh| + |shin|),
    otherwise on the reachable point nearest to it along the hip → target line.
    """
    a = np.linalg.norm(knee - hip, axis=-1, keepdims=True)
    b = np.linalg.norm(ankle - knee, axis=-1, keepdims=True)
    v = target - hip
    d_raw = np.linalg.norm(v, axis=-1, keepdims=True)
    u = v / np.maximum(d_raw, 1e-9)
    d = np.clip(d_raw, np.abs(a - b) + 1e-4, a + b - 1e-4)
    pole = (knee - hip) - np.sum((knee - hip) * u, axis=-1, keepdims=True) * u
    pole_n = np.linalg.norm(pole, axis=-1, keepdims=True)
    # A straight original leg has no bend plane: bend forward, perpendicular to the leg and to x.
    fallback = np.cross(u, np.array([1.0, 0.0, 0.0]))
    pole = np.where(pole_n > 1e-6, pole / np.maximum(pole_n, 1e-9),
                    fallback / np.maximum(np.linalg.norm(fallback, axis=-1, keepdims=True), 1e-9))
    cos_a = np.clip((a**2 + d**2 - b**2) / (2 * a * d), -1.0, 1.0)
    new_knee = hip + a * (cos_a * u + np.sqrt(1 - cos_a**2) * pole)
    return new_knee, hip + d * u


def close_gaps(contact: np.ndarray, max_gap: int) -> np.ndarray:
    """contact (T,) bool with every run of at most `max_gap` False frames between two True frames set True."""
    out = contact.copy()
    idx = np.flatnonzero(contact)
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        if 1 < b - a <= max_gap + 1:
            out[a + 1:b] = True
    return out


def _planted(height: np.ndarray) -> np.ndarray:
    """The height a locked toe is held at: its own, or `PLANT_HEIGHT` where it hovers above that."""
    return np.minimum(height, PLANT_HEIGHT)


def _split(short: int) -> tuple[int, int]:
    """Frames a swing `short` of its length takes from the end of the lock it leaves and from the start
    of the lock it lands in."""
    return short // 2, short - short // 2


def _too_short_to_land(prev_end: int, s: int, e: int, step_frames: int) -> bool:
    """Whether a swing from a lock ending at `prev_end` into the lock [s, e] would take all of it."""
    short = max(step_frames - (s - prev_end - 1), 0)
    return s - prev_end - 1 <= MAX_SWING_FRAMES and s + _split(short)[1] > e


def _swing(a_end: int, b_start: int, anchor_a: np.ndarray, anchor_b: np.ndarray, height: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames, toe xz (n, 2), lift (n,)) of a step leaving anchor_a after frame a_end and landing on
    anchor_b at frame b_start: smoothstep in the ground plane between the first and last swing frames, a sine
    arc of `height` in y."""
    frames = np.arange(a_end + 1, b_start)
    n = b_start - a_end
    u = (frames - a_end) / n
    # The foot rises on the first swing frame and comes down on the last before it moves across, as a
    # toe leaves and meets the floor: a foot moving while still at floor height is skating.
    v = np.clip((frames - a_end - 1) / max(n - 2, 1), 0.0, 1.0)
    ease = v * v * (3 - 2 * v)
    xz = anchor_a[None, [0, 2]] + ease[:, None] * (anchor_b[[0, 2]] - anchor_a[[0, 2]])[None]
    return frames, xz, height * np.sin(np.pi * u)


def lock_feet(joints: np.ndarray, cfg: FootLockConfig, pinned: np.ndarray | None = None) -> np.ndarray:
    """Foot-locked copy of joints (T, 22, 3), metres, y up. pinned: (T, 22) bool, joints a keyframe
    constrains (a lock containing a pinned ankle or toe is anchored there, and is not shortened for a step)."""
    out = np.array(joints, dtype=np.float64, copy=True)
    T = out.shape[0]
    for hip, knee, ankle, toe in LEGS:
        offset = np.zeros((T, 3))
        weight = np.zeros(T)
        contact = close_gaps(out[:, toe, 1] < cfg.contact_height, cfg.gap_frames)
        fixed = np.zeros(T, dtype=bool) if pinned is None else pinned[:, toe] | pinned[:, ankle]
        locks: list[tuple[int, int, np.ndarray]] = []
        for s, e in contact_locks(out[:, toe], contact, cfg.max_drift):
            if e == s:
                continue  # a single frame cannot slide
            frames = np.arange(s, e + 1)
            pin = frames[fixed[frames]]
            anchor = out[pin[0], toe] if len(pin) else np.median(out[frames, toe], axis=0)
            if locks and cfg.step_frames and not len(pin) and _too_short_to_land(locks[-1][1], s, e, cfg.step_frames):
                continue  # the foot passes over this brief contact on its swing to the next lock
            locks.append((s, e, anchor))
        lift = np.zeros(T)
        swings = np.zeros(T, dtype=bool)
        for (s_a, e_a, anchor_a), (s_b, e_b, anchor_b) in zip(locks[:-1], locks[1:], strict=True):
            gap = s_b - e_a - 1
            if cfg.step_frames == 0 or gap > MAX_SWING_FRAMES:
                continue  # the foot's own swing, eased by the ramps below
            take_a, take_b = _split(max(cfg.step_frames - gap, 0))
            a_end, b_start = e_a - take_a, s_b + take_b
            if a_end < s_a or b_start > e_b or fixed[a_end + 1:b_start].any():
                continue  # too short a lock to land in, or a keyframe there: the foot jumps as before
            frames, xz, up = _swing(a_end, b_start, anchor_a, anchor_b, cfg.step_height)
            offset[frames, 0] = xz[:, 0] - out[frames, toe, 0]
            offset[frames, 2] = xz[:, 1] - out[frames, toe, 2]
            # the height goes from where it left the floor to where it meets it, plus the lift
            ends = _planted(out[[a_end, b_start], toe, 1])
            offset[frames, 1] = np.interp(frames, [a_end, b_start], ends) - out[frames, toe, 1]
            lift[frames], weight[frames], swings[frames] = up, 1.0, True
        for s, e, anchor in locks:
            frames = np.arange(s, e + 1)
            frames = frames[~swings[frames]]
            offset[frames, 0] = anchor[0] - out[frames, toe, 0]
            offset[frames, 2] = anchor[2] - out[frames, toe, 2]
            offset[frames, 1] = _planted(out[frames, toe, 1]) - out[frames, toe, 1]
            weight[frames] = 1.0
            for k in range(1, cfg.ramp_frames + 1):  # ease in before and out after, where free
                w = 1 - k / (cfg.ramp_frames + 1)
                for f, edge in ((s - k, s), (e + k, e)):
                    if 0 <= f < T and not contact[f] and w > weight[f]:
                        # xz only: easing the planted height into a free foot brings it down to the
                        # floor while it moves, which is skating
                        offset[f], weight[f] = w * offset[edge] * [1.0, 0.0, 1.0], w
        moved = weight > 0
        if not moved.any():
            continue
        target = out[moved, ankle] + offset[moved]
        target[:, 1] += lift[moved]
        new_knee, new_ankle = two_bone_ik(out[moved, hip], out[moved, knee], out[moved, ankle], target)
        out[moved, toe] += new_ankle - out[moved, ankle]
        out[moved, knee], out[moved, ankle] = new_knee, new_ankle
    return out.astype(joints.dtype)
