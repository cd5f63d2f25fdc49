"""Control benchmark cases sampled from real test clips, deterministically by seed.

One case = one real clip window: its caption, its length T (≤ 196 pose frames), the ground-truth
motion, and the constraints taken from it — the dense pelvis trajectory (all frames, ground plane
xz, or xyz with `control_height`) and 1-3 keyframe poses at random frames. Every method of the
benchmark is run on the same cases.

Coordinates: a window is re-canonicalised by decoding its own feature rows with the model's R(·)
(`features_to_pose_frames`, all T = rows + 1 pose frames), so it starts at the origin facing +Z
like every generated motion. A keyframe
pose is the window's pose at that frame, root-relative and rotated to face +Z (the canonical facing
of `KeyframePose`; the model turns it to the generated body's facing, see guidance.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ikmo.motion_model.constraints import (
    ControlSignals,
    KeyframePose,
    MotionDescription,
    MotionSpec,
    Trajectory,
)
from ikmo.motion_model.control.align import facing_yaw, rotate_y
from ikmo.motion_model.errors import MotionDataError
from ikmo.motion_model.model.training import Clip
from ikmo.motion_model.representation.features import features_to_pose_frames, root_heading
from ikmo.motion_model.representation.skeleton import FPS, MAX_FRAMES

log = logging.getLogger(__name__)


@dataclass
class ControlCase:
    """One benchmark case.

    A test-clip case: features (T-1, 263) raw features of the real window, joints (T, 22, 3) its
    global joints in metres, spec the constraints (trajectory + keyframes) with the caption as a
    `MotionSpec`. A request case (`eval/bench_requests.py`): the spec the agents made from a suite
    request, `request` the words the user typed, `group` its suite category, and no real motion
    (features, joints None).
    """

    case_id: str
    clip: str
    start: int
    text: str
    features: np.ndarray | None
    joints: np.ndarray | None
    spec: MotionSpec
    request: str | None = None
    group: str | None = None  # a request's suite category (turns, directions, ...), for per-category figures

    @property
    def n_frames(self) -> int:
        return int(self.spec.n_frames)

    @property
    def prompt(self) -> str:
        """The text a motion is scored against (R-precision): what the user typed, else the caption."""
        return self.request if self.request is not None else self.text

    def control(self) -> ControlSignals:
        return self.spec.to_control()


def canonical_keyframe(pose: np.ndarray) -> np.ndarray:
    """(22, 3) global pose → root-relative, rotated so the body faces +Z (KeyframePose convention)."""
    p = torch.as_tensor(pose, dtype=torch.float64)
    rel = p - p[:1]
    return rotate_y(rel, -facing_yaw(p)).numpy().astype(np.float32)


def make_case(item: Clip, start: int, n_frames: int, keyframes: Sequence[int], caption: str,
              control_height: bool = False, case_id: str = "", heading: bool = True) -> ControlCase:
    """Build a case from clip `item`: pose frames [start, start + n_frames), keyframes at window frames.

    With `heading` the trajectory also carries the window's own facing on every frame (its root
    yaw), as the trajectory agent gives a facing with the paths it plans; without it the path is
    bare positions and nothing says which way the body faces.
    """
    L = item.features.shape[0]
    if n_frames < 2 or start < 0 or start + n_frames - 1 > L:
        raise MotionDataError(f"clip {item.name}: window {start}+{n_frames} frames does not fit its {L + 1} frames")
    feats = np.asarray(item.features[start:start + n_frames - 1], dtype=np.float32)
    with torch.no_grad():
        joints = features_to_pose_frames(torch.as_tensor(feats, dtype=torch.float64)).float().numpy()  # (T, 22, 3)
    facing = root_heading(torch.as_tensor(feats, dtype=torch.float64)).tolist() if heading else None
    traj = Trajectory(positions=joints[:, 0].tolist(), mask=[True] * n_frames, control_height=control_height,
                      facing=facing, facing_mask=[True] * n_frames if heading else None)
    kfs = [KeyframePose(time_s=f / FPS, joints=canonical_keyframe(joints[f]).tolist(), source=f"clip:{item.name}@{f}")
           for f in sorted(keyframes)]
    spec = MotionSpec(description=MotionDescription(text=caption, duration_s=n_frames / FPS), keyframes=kfs,
                      trajectory=traj, n_frames=n_frames)
    return ControlCase(case_id or f"{item.name}@{start}", item.name, start, caption, feats, joints, spec)


def sample_cases(items: Sequence[Clip], n_cases: int, seed: int = 0, max_frames: int = MAX_FRAMES,
                 min_frames: int = 40, n_keyframes: tuple[int, int] = (1, 3), control_height: bool = False,
                 heading: bool = True) -> list[ControlCase]:
    """`n_cases` cases from distinct clips where possible (cycling through clips when fewer), same
    seed → same cases. Clips shorter than `min_frames` pose frames are skipped; longer than
    `max_frames` are cut to a random window of `max_frames`. Keyframes: 1-3 distinct frames, not
    the first (the start pose is set by the trajectory's origin anyway)."""
    usable = sorted((it for it in items if it.features.shape[0] + 1 >= min_frames), key=lambda it: it.name)
    if not usable:
        raise MotionDataError(f"no test clip has {min_frames} frames or more; build the corpus first "
                              "(`ikmo data build`) or lower --min-frames")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(usable))
    cases = []
    for k in range(n_cases):
        item = usable[int(order[k % len(usable)])]
        n_avail = item.features.shape[0] + 1
        T = min(n_avail, max_frames)
        start = int(rng.integers(0, n_avail - T + 1))
        n_kf = int(rng.integers(n_keyframes[0], n_keyframes[1] + 1))
        kf = rng.choice(np.arange(1, T), size=min(n_kf, T - 1), replace=False)
        caption = item.captions[int(rng.integers(len(item.captions)))]
        cases.append(make_case(item, start, T, [int(f) for f in kf], caption, control_height,
                               case_id=f"{k:04d}:{item.name}@{start}", heading=heading))
    log.info("sampled %d control cases from %d test clips (seed %d)", len(cases), len(usable), seed)
    return cases
