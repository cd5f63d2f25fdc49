"""How well a stimulus fits its request, measured — what the simulated raters perceive.

A stimulus's fit in [0, 1] is the weighted mean of what can be measured for its item:

- checks (weight 0.4): the share of the item's `expect` motion checks it passes (`eval.agents`
  `check_case` on the motion: travel, displacement, turn, facing, wrists, constraint errors);
- poses (0.3): per photo with a known true pose (`photo.npy` beside it), exp(−e / 0.15 m), e the
  MPJPE of the motion's closest pose to it (`eval.agents.expectations.keyframe_truth_error`; within
  ±0.5 s of the photo's time when it has one, anywhere in the motion when not);
- text (0.3): the text–motion evaluator's cosine of the request text and the motion, as (1 + cos) / 2.

Measured on the files the build wrote (joints.npy, features.npy, spec.json, the run's metrics);
nothing here knows which condition made the motion.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ikmo.motion_model.constraints import MotionSpec

from ..agents.cases import Expectations
from ..agents.expectations import Outcome, PhotoTruth, check_case, keyframe_truth_error
from ..agents.runner import Worker
from .definition import Study

WEIGHTS = {"checks": 0.4, "poses": 0.3, "text": 0.3}
POSE_SCALE_M = 0.15
POSE_WINDOW_S = 0.5


@dataclass
class Fit:
    """The measured fit of one stimulus and its parts (None: not measurable for this item)."""

    stimulus: str
    fit: float
    checks: float | None
    poses: float | None
    text: float | None
    failed_checks: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def closest_pose_error(joints: np.ndarray, truth: PhotoTruth, fps: float) -> float:
    """MPJPE (m) of the motion's pose nearest the photo's true pose: near its time, or anywhere."""
    T = len(joints)
    if truth.time_s is None:
        frames = range(T)
    else:
        c = round(truth.time_s * fps)
        w = round(POSE_WINDOW_S * fps)
        frames = range(max(0, c - w), min(T, c + w + 1))
    return min(keyframe_truth_error(joints, PhotoTruth(truth.joints, f / fps, truth.joints_shown), fps)
               for f in frames)


def stimulus_fit(study: Study, record: dict[str, Any], root: Path, worker: Worker) -> Fit:
    """The fit of the stimulus of a manifest `record` (files under `root`); worker gives the
    text–motion similarity (its evaluator loaded once)."""
    item = study.item(record["item"])
    files = record["files"]
    joints = np.load(root / files["joints"])
    features = np.load(root / files["features"]) if "features" in files else None
    spec = MotionSpec.model_validate(json.loads((root / files["spec"]).read_text())) if "spec" in files else None
    fps = spec.fps if spec is not None else 20.0
    parts: dict[str, float | None] = {"checks": None, "poses": None, "text": None}
    failed: list[str] = []
    if item.expect is not None:
        o = Outcome(status="ok", spec=spec, joints=joints, features=features, metrics=record.get("metrics") or {})
        checks = check_case(Expectations(status="any", motion=item.expect), o)
        checks = [c for c in checks if c.name != "status"]
        if checks:
            parts["checks"] = sum(c.ok for c in checks) / len(checks)
            failed = [c.line() for c in checks if not c.ok]
    errs = []
    for ph in item.photos:
        tp = study.truth_path(ph)
        if tp.is_file():
            errs.append(closest_pose_error(joints, PhotoTruth(np.load(tp), ph.time_s, ph.joints), fps))
    if errs:
        parts["poses"] = float(np.mean([math.exp(-e / POSE_SCALE_M) for e in errs]))
    sim = worker.similarity(item.text, features)
    if sim is not None:
        parts["text"] = (1.0 + sim) / 2.0
    have = {k: v for k, v in parts.items() if v is not None}
    fit = sum(WEIGHTS[k] * v for k, v in have.items()) / sum(WEIGHTS[k] for k in have) if have else 0.5
    return Fit(record["id"], float(fit), parts["checks"], parts["poses"], parts["text"], failed)
