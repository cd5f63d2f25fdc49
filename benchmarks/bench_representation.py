"""Speed of the HumanML3D representation on CPU.

features_to_joints runs inside every guided diffusion step, so it is timed on a full batch
(64, 196, 263), forward and forward+backward, against a baseline measured in the same run: the same
conversion done clip by clip (what a loop over a batch would cost). joints_to_features, the corpus
builder's step, is timed per clip and batched.

    python benchmarks/bench_representation.py [--batch 64] [--frames 196] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from ikmo.motion_model.representation.features import features_to_joints, joints_to_features
from ikmo.motion_model.representation.skeleton import HUMANML3D_22


def _time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``fn`` in milliseconds (after one warm-up call).

    The minimum, not the median: on a shared machine the other processes only ever add time.
    """
    fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1e3)
    return min(runs)


def _plausible_features(batch: int, frames: int, seed: int) -> torch.Tensor:
    """Features of real-looking motions: random walks of the rest pose, via joints_to_features."""
    g = torch.Generator().manual_seed(seed)
    rest = torch.from_numpy(HUMANML3D_22.offsets()).float()
    parents = HUMANML3D_22.parents
    pose = [torch.zeros(3)]
    for c in range(1, 22):
        pose.append(pose[parents[c]] + rest[c])
    pose_t = torch.stack(pose) + torch.tensor([0.0, 0.95, 0.0])
    drift = torch.cumsum(0.01 * torch.randn(batch, frames + 1, 1, 3, generator=g), dim=1)
    wiggle = 0.02 * torch.randn(batch, frames + 1, 22, 3, generator=g)
    return joints_to_features(pose_t + drift + wiggle).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--frames", type=int, default=196)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    feats = _plausible_features(args.batch, args.frames, seed=0)
    print(f"features {tuple(feats.shape)} float32, {args.threads} threads, best of {args.repeats}")

    batched = _time(lambda: features_to_joints(feats), args.repeats)
    looped = _time(lambda: [features_to_joints(f) for f in feats], max(3, args.repeats // 4))
    print(f"features_to_joints  batched {batched:8.2f} ms | per-clip loop (baseline) {looped:8.2f} ms "
          f"| speed-up x{looped / batched:.1f}")

    x = feats.clone().requires_grad_(True)

    def fwd_bwd() -> None:
        features_to_joints(x).square().sum().backward()
        x.grad = None

    both = _time(fwd_bwd, args.repeats)
    print(f"features_to_joints  forward+backward {both:8.2f} ms (x{both / batched:.1f} of forward)")

    joints = features_to_joints(feats[:8]).double()
    one = _time(lambda: joints_to_features(joints[0]), max(3, args.repeats // 4))
    eight = _time(lambda: joints_to_features(joints), max(3, args.repeats // 4))
    print(f"joints_to_features  one clip {one:8.2f} ms | batch of 8 {eight:8.2f} ms "
          f"| per clip x{8 * one / eight:.1f} faster batched")


if __name__ == "__main__":
    main()
