"""Augmentations of training crops that make motions the corpus has too few of.

`time_warp` plays a crop faster or slower: the pelvis path keeps its shape, the speed and the
cadence change by `rate`. Why: requests ask for speeds the mocap covers thinly (fast walks, slow
walks over a long path), and a root-target ControlNet measured on test windows fell behind fast
paths (a 9.1 m walk in 9.8 s ended 6.5 m off). The warp is done on joint positions (linear
interpolation in time) and the features are derived again by `joints_to_features`, exactly as the
corpus build derives them, so foot contacts and velocities stay consistent with the new timing.
`concatenate` plays one crop after another with a cross-fade: requests chain actions ("walk
forward, turn left and walk on", "walk, then wave"), while most clips of the corpus hold one. The
features are root-relative (the root's yaw and velocity per frame, the pose in the root's frame), so
the rows of the second crop continue from wherever the first ended, facing where it faced; only the
pose jumps at the seam, and the cross-fade spreads that jump over `blend` rows. The rows are then
derived again from the joints, so velocities and foot contacts agree across the seam.
`reverse` plays a crop backwards in time: a forward walk becomes a backward walk (the pelvis moves
against the facing, the feet lift and plant in reverse order), which the corpus has few of (38 of
7,500 items mention walking backward, none a sidestep) while requests ask for them and skate
there. Only plain forward walks are reversed, with their caption renamed
(`captions.backward_caption`): most other motions reversed are other motions (sitting down
becomes standing up) whose words we cannot derive.
Mirroring lives in the corpus build (`representation.mirror_joints`).
"""

from __future__ import annotations

import math

import torch

from ikmo.motion_model.representation.features import features_to_pose_frames, joints_to_features


def _features_of(joints: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Feature rows (T - 1, F) of pose frames (T, J, 3), derived as the corpus build derives them
    (`canonical=False`: the crop keeps its own start and facing), in `like`'s dtype."""
    return joints_to_features(joints, canonical=False).to(like.dtype)


def warp_joints(joints: torch.Tensor, rate: float, n_out: int | None = None) -> torch.Tensor:
    """Joints (T, J, 3) resampled in time at `rate` (2: twice as fast, half the frames), linearly.

    n_out: frames wanted (default: as many as fit, 1 + floor((T - 1) / rate)); the source must cover
    them, (n_out - 1) · rate ≤ T - 1.
    """
    if rate <= 0:
        raise ValueError(f"time-warp rate {rate} must be positive")
    T = joints.shape[0]
    n = n_out if n_out is not None else 1 + math.floor((T - 1) / rate + 1e-9)
    if n < 2 or (n - 1) * rate > T - 1 + 1e-6:
        raise ValueError(f"{T} frames cannot give {n} frames at rate {rate}")
    src = torch.arange(n, dtype=torch.float64) * rate
    lo = src.floor().long().clamp(max=T - 1)
    hi = (lo + 1).clamp(max=T - 1)
    w = (src - lo.double()).to(joints.dtype)[:, None, None]
    return joints[lo] * (1 - w) + joints[hi] * w


def time_warp(features: torch.Tensor, rate: float, n_rows: int | None = None) -> torch.Tensor:
    """Raw feature rows (N, F) of a crop played at `rate` → (M, F), M = n_rows or as many as fit.

    The crop's joints (N + 1 frames) are warped by `warp_joints` and turned into features again.
    """
    n_out = None if n_rows is None else n_rows + 1
    return _features_of(warp_joints(features_to_pose_frames(features), rate, n_out), features)


def concatenate(first: torch.Tensor, second: torch.Tensor, blend: int = 10) -> torch.Tensor:
    """Raw feature rows (Na, F) then (Nb, F) → (Na + Nb − blend, F), cross-faded over `blend` rows.

    The last `blend` rows of `first` and the first `blend` of `second` are mixed with a weight rising
    linearly from 0 to 1 (blend 0: plain concatenation), then the whole is round-tripped through
    the joints (`features_to_pose_frames` → `joints_to_features`) to make its rows consistent.
    """
    k = min(blend, len(first) - 1, len(second) - 1)
    if k > 0:
        w = torch.linspace(0, 1, k + 2, dtype=first.dtype)[1:-1, None]
        seam = first[-k:] * (1 - w) + second[:k] * w
        rows = torch.cat([first[:-k], seam, second[k:]])
    else:
        rows = torch.cat([first, second])
    return _features_of(features_to_pose_frames(rows), first)


def reverse(features: torch.Tensor) -> torch.Tensor:
    """Raw feature rows (N, F) of a crop played backwards in time → (N, F) (its last pose first)."""
    return _features_of(features_to_pose_frames(features).flip(0), features)
