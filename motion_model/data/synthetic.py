"""A tiny procedural corpus (sinusoidal walks, turns, standing) in the HumanML3D layout, for tests,
smoke runs and the DDP check. It is not training data for the shipped weights.

Each clip is forward kinematics of the 22-joint skeleton with legs and arms swinging sinusoidally,
a pelvis moving at `speed` m/s along a heading that turns at `turn` rad/s, processed by
`representation.joints_to_features` exactly as real mocap is.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ikmo.motion_model.fileio import save_npy, write_text
from ikmo.motion_model.representation.features import Normalizer, forward_kinematics, joints_to_features
from ikmo.motion_model.representation.rotations import axis_angle_to_quat, quat_identity
from ikmo.motion_model.representation.skeleton import FPS, HUMANML3D_22


def synthetic_walk(n_frames: int, speed: float, turn: float, swing: float = 0.5, phase: float = 0.0,
                   fps: float = FPS) -> np.ndarray:
    """Joints (n_frames, 22, 3) float32, metres: a walk (speed m/s, turn rad/s, swing rad amplitude)."""
    t = torch.arange(n_frames, dtype=torch.float64) / fps
    yaw = turn * t
    heading = torch.stack([torch.sin(yaw), torch.zeros_like(yaw), torch.cos(yaw)], -1)
    root = torch.cumsum(heading * speed / fps, 0)
    step_hz = 1.8 if speed > 0 else 0.6
    s = torch.sin(2 * math.pi * step_hz * t + phase)
    root[:, 1] = 0.92 + 0.02 * torch.abs(s)
    q = quat_identity((n_frames, HUMANML3D_22.n_joints), torch.float64)
    q = q.clone()

    def rot(axis: tuple[float, float, float], angle: torch.Tensor) -> torch.Tensor:
        return axis_angle_to_quat(torch.tensor(axis, dtype=torch.float64) * angle[:, None])

    q[:, 0] = rot((0, 1, 0), yaw)
    q[:, 1] = rot((1, 0, 0), swing * s)  # hips swing in opposition
    q[:, 2] = rot((1, 0, 0), -swing * s)
    q[:, 4] = rot((1, 0, 0), 0.6 * swing * (1 + s))  # knees bend backwards as the leg swings
    q[:, 5] = rot((1, 0, 0), 0.6 * swing * (1 - s))
    q[:, 16] = rot((1, 0, 0), -0.7 * swing * s)  # arms against the legs
    q[:, 17] = rot((1, 0, 0), 0.7 * swing * s)
    return forward_kinematics(q, root, HUMANML3D_22).float().numpy()


_KINDS = (
    ("a person walks forward", 1.2, 0.0),
    ("a person walks slowly forward", 0.6, 0.0),
    ("a person walks in a circle to the left", 1.0, 0.6),
    ("a person walks in a circle to the right", 1.0, -0.6),
    ("a person stands still swinging the arms", 0.0, 0.0),
)


def write_synthetic_corpus(out_dir: str | Path, n_clips: int = 20, n_frames: int = 80, seed: int = 0) -> Path:
    """Write a HumanML3D-layout corpus of `n_clips` procedural clips into `out_dir`; returns it."""
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    names, feats = [], []
    for i in range(n_clips):
        caption, speed, turn = _KINDS[i % len(_KINDS)]
        T = int(rng.integers(max(10, n_frames // 2), n_frames + 1))
        joints = synthetic_walk(T, speed * float(rng.uniform(0.8, 1.2)), turn, float(rng.uniform(0.3, 0.6)),
                                float(rng.uniform(0, 2 * math.pi)))
        # numpy_compatible takes ndarrays; its typing keeps the torch signature.
        f = np.asarray(joints_to_features(joints), dtype=np.float32)  # type: ignore[arg-type]
        name = f"syn{i:04d}"
        save_npy(out / "new_joint_vecs" / f"{name}.npy", f)
        write_text(out / "texts" / f"{name}.txt", f"{caption}#{caption}#0.0#0.0\n")
        names.append(name)
        feats.append(f)
    Normalizer.fit(np.concatenate(feats)).save(out)
    n_val = max(1, n_clips // 10)
    write_text(out / "train.txt", "\n".join(names[n_val:]) + "\n")
    write_text(out / "val.txt", "\n".join(names[:n_val]) + "\n")
    write_text(out / "test.txt", "\n".join(names[:n_val]) + "\n")
    return out
