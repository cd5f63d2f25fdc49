"""How well do the two IKMo stages meet constraints taken from held-out motions?

For N validation clips: the ground-truth pelvis at 5 waypoints (xz) and one full-body keyframe
become the constraints; the caption is the clip's. Four settings are sampled with the same seeds:
no conditioning, stage 1 only (optimization), stage 2 only (ControlNet), both. Prints mean
trajectory error, keyframe MPJPE (metres), foot skating and seconds per motion, with ratios to the
unconditioned baseline measured in the same run.

    python benchmarks/model_constraints.py --weights motion_model/model/weights --corpus data/corpus --n 8
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ikmo.eval.metrics import foot_skating_ratio
from ikmo.motion_model.constraints import ControlSignals
from ikmo.motion_model.control.align import facing_yaw, rotate_y
from ikmo.motion_model.control.guidance import measured_errors
from ikmo.motion_model.model.training import load_corpus
from ikmo.motion_model.model_config import OptimizationConfig
from ikmo.motion_model.representation.features import features_to_pose_frames
from ikmo.motion_model.sampling import load_model, sample


def constraints_from(joints: torch.Tensor, g: torch.Generator) -> ControlSignals:
    T = joints.shape[0]
    traj, tm = torch.zeros(T, 3), torch.zeros(T, 3, dtype=torch.bool)
    frames = torch.linspace(0, T - 1, 5).round().long()
    traj[frames] = joints[frames, 0]
    tm[frames, 0] = tm[frames, 2] = True
    pose, pm, pw = torch.zeros(T, 22, 3), torch.zeros(T, 22, dtype=torch.bool), torch.zeros(T, 22)
    f = int(torch.randint(T // 4, 3 * T // 4, (1,), generator=g))
    pose[f] = rotate_y(joints[f] - joints[f, :1], -facing_yaw(joints[f]))
    pm[f], pw[f] = True, 1.0
    return ControlSignals(traj, tm, pose, pm, pw)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None)
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (a second thread spin-waits on busy cores)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.weights)
    corpus = load_corpus(args.corpus, "val")
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(corpus.clips), generator=g)[: args.n].tolist()
    texts, lengths, controls = [], [], []
    for i in idx:
        clip = corpus.clips[i]
        raw = torch.from_numpy(clip.features[: args.frames - 1])
        joints = features_to_pose_frames(raw)
        texts.append(clip.captions[0])
        lengths.append(joints.shape[0])
        controls.append(constraints_from(joints, g))
    off = OptimizationConfig(enabled=False)
    settings = {
        "none": dict(controls=None, optimization=off, use_controlnet=False),
        "stage1 (optimization)": dict(controls=controls, use_controlnet=False),
        "stage2 (ControlNet)": dict(controls=controls, optimization=off, use_controlnet=True),
        "both": dict(controls=controls, use_controlnet=True),
    }
    rows = {}
    for name, kw in settings.items():
        t0 = time.perf_counter()
        motions = []
        for b in range(len(texts)):  # one motion at a time: the per-motion latency a user sees
            c = kw["controls"][b] if kw["controls"] is not None else None
            motions += sample(model, [texts[b]], [lengths[b]], [c], seed=b, steps=args.steps,
                              optimization=kw.get("optimization"), use_controlnet=kw["use_controlnet"])
        dt = (time.perf_counter() - t0) / len(texts)
        errs = [measured_errors(m.joints, c) for m, c in zip(motions, controls, strict=True)]
        rows[name] = {
            "traj_err_m": float(np.mean([e["traj_err_mean"] for e in errs])),
            "keyframe_mpjpe_m": float(np.mean([e["keyframe_mpjpe"] for e in errs])),
            "foot_skating": float(np.mean([foot_skating_ratio(m.joints) for m in motions])),
            "s_per_motion": dt,
        }
    base = rows["none"]
    print(f"{'setting':24s} {'traj err m':>10s} {'kf MPJPE m':>10s} {'skating':>8s} {'s/motion':>9s}  ratios vs none")
    for name, r in rows.items():
        print(f"{name:24s} {r['traj_err_m']:10.3f} {r['keyframe_mpjpe_m']:10.3f} {r['foot_skating']:8.3f} "
              f"{r['s_per_motion']:9.2f}  traj x{r['traj_err_m'] / base['traj_err_m']:.2f} "
              f"kf x{r['keyframe_mpjpe_m'] / base['keyframe_mpjpe_m']:.2f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
