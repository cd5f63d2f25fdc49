"""Expectation checks on what a user gets: the run's answer and notes, the spec the agents built,
and the motion itself (joints, features, the run's measured constraint errors).

`Outcome` is everything a check reads; `check_case(expect, outcome)` returns one `Check` per
expectation, each saying what was expected and what came out. All checks are pure numpy on the
outcome: a unit test builds an outcome that violates an expectation and sees it fail.

Conventions (HumanML3D): 20 fps, metres, y up, +Z forward at frame 0, +X left; angles in degrees,
positive to the left (counter-clockwise seen from above).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ikmo.motion_model.constraints import MotionSpec, TrajectoryPlan
from ikmo.tools.trajectory import path_length

from ..metrics import mpjpe
from .cases import Expectations, MotionExpect, PathExpect, VsPrevious, WristExpect

HEAD, L_WRIST, R_WRIST = 15, 20, 21
# Joints a photo of the upper body shows: pelvis, spine, neck, head, collars, arms.
UPPER_BODY = (0, 3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)
MOVING_SPEED_M_S = 0.3  # "walking" frames for the facing check
STANDING_PATH_M = 0.3


@dataclass
class Check:
    """One expectation: met or not, what was expected, what came out."""

    name: str
    ok: bool
    expected: str
    got: str

    def line(self) -> str:
        return f"{'ok ' if self.ok else 'FAIL'} {self.name}: expected {self.expected}, got {self.got}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "expected": self.expected, "got": self.got}


@dataclass
class PhotoTruth:
    """A photo's ground truth: joints (22, 3) metres, the time the run used for it, the joints it shows."""

    joints: np.ndarray
    time_s: float | None
    joints_shown: str = "all"


@dataclass
class Outcome:
    """What one case's run gave the user.

    status: "ok" (a motion), "failed" (a clear error), "question" (a chat run waits for an answer);
    joints: (T, 22, 3) float32 metres of the motion (None without one); features: (T-1, 263).
    """

    status: str
    answer: str | None = None
    error: str | None = None
    question: str | None = None
    notes: list[str] = field(default_factory=list)
    spec: MotionSpec | None = None
    plan: TrajectoryPlan | None = None
    joints: np.ndarray | None = None
    features: np.ndarray | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    photos: list[PhotoTruth] = field(default_factory=list)
    text_similarity: float | None = None
    previous: Outcome | None = None

    @property
    def said(self) -> str:
        """Everything the user was told, lower case."""
        return "\n".join([self.answer or "", self.error or "", self.question or "", *self.notes]).lower()

    @property
    def actions(self) -> list[str]:
        if self.spec is None:
            return []
        desc = self.spec.description
        return [s.action for s in desc.segments] if desc.segments else [desc.text]

    @property
    def fps(self) -> float:
        return self.spec.fps if self.spec is not None else 20.0


# --------------------------------------------------------------------------- geometry


def _fmt_range(r: tuple[float, float], unit: str = "") -> str:
    return f"in [{r[0]:g}, {r[1]:g}]{unit}"


def _in(v: float, r: tuple[float, float]) -> bool:
    return bool(r[0] - 1e-9 <= v <= r[1] + 1e-9)


def wrap_deg(a: np.ndarray | float) -> np.ndarray:
    """Angles wrapped into (-180, 180]."""
    return -((-np.asarray(a, dtype=np.float64) + 180.0) % 360.0 - 180.0)


def facing_yaw_deg(joints: np.ndarray) -> np.ndarray:
    """Facing yaw of each pose from hips and shoulders (`motion_model.control.align.facing_yaw`),
    degrees (0 = +Z, +90 = +X, left). joints: (..., 22, 3) → (...,)."""
    import torch

    from ikmo.motion_model.control.align import facing_yaw

    return np.degrees(facing_yaw(torch.as_tensor(np.asarray(joints, dtype=np.float64))).numpy())


def heading_change_deg(joints: np.ndarray) -> float:
    """Unwrapped facing yaw at the end minus at the start (means of 5 frames), degrees."""
    yaw = np.degrees(np.unwrap(np.radians(facing_yaw_deg(joints))))
    k = min(5, len(yaw))
    return float(yaw[-k:].mean() - yaw[:k].mean())


def pelvis_velocity(joints: np.ndarray, fps: float, half_window: int = 2) -> np.ndarray:
    """Ground-plane pelvis velocity (T, 2) (x, z) m/s, central differences over ±half_window frames."""
    p = np.asarray(joints, dtype=np.float64)[:, 0, [0, 2]]
    n = len(p)
    idx = np.arange(n)
    lo, hi = np.clip(idx - half_window, 0, n - 1), np.clip(idx + half_window, 0, n - 1)
    dt = np.maximum(hi - lo, 1) / fps
    return (p[hi] - p[lo]) / dt[:, None]


def facing_vs_travel(joints: np.ndarray, fps: float) -> tuple[float | None, int]:
    """Mean |facing − direction of travel| (degrees) over frames faster than 0.3 m/s, and their count
    (None when no frame moves that fast)."""
    v = pelvis_velocity(joints, fps)
    fast = np.linalg.norm(v, axis=1) > MOVING_SPEED_M_S
    if not fast.any():
        return None, 0
    travel = np.degrees(np.arctan2(v[:, 0], v[:, 1]))
    diff = np.abs(wrap_deg(facing_yaw_deg(joints) - travel))
    return float(diff[fast].mean()), int(fast.sum())


# Locomotion that does not face its direction of travel by design.
NOT_FORWARD_ACTIONS = ("walk-back", "walk-left", "walk-right")


def walks_forward(actions: Iterable[str]) -> bool:
    """Whether a motion made of these vocabulary actions should face its direction of travel."""
    return not any(a in NOT_FORWARD_ACTIONS for a in actions)


def canonical_pose(joints: np.ndarray) -> np.ndarray:
    """(22, 3) pose with the pelvis at the origin, turned to face +Z."""
    j = np.asarray(joints, dtype=np.float64) - np.asarray(joints, dtype=np.float64)[0]
    yaw = math.radians(float(facing_yaw_deg(j)))
    c, s = math.cos(-yaw), math.sin(-yaw)
    x, y, z = j[:, 0], j[:, 1], j[:, 2]
    return np.stack([c * x + s * z, y, -s * x + c * z], axis=-1)


def keyframe_truth_error(joints: np.ndarray, truth: PhotoTruth, fps: float) -> float:
    """MPJPE (m) of the motion's pose at the photo's time against the photo's true pose, both
    root-aligned and facing +Z, over the joints the photo shows."""
    assert truth.time_s is not None
    f = int(min(max(round(truth.time_s * fps), 0), len(joints) - 1))
    mask = np.zeros(22, bool)
    mask[list(UPPER_BODY) if truth.joints_shown == "upper" else slice(None)] = True
    return mpjpe(canonical_pose(joints[f]), canonical_pose(truth.joints), mask)


# --------------------------------------------------------------------------- spec checks


def _status(e: Expectations, o: Outcome) -> list[Check]:
    got = o.status + (f" ({(o.error or o.question or '')[:160]})" if o.status != "ok" else "")
    return [Check("status", e.status in ("any", o.status), e.status, got)]


def _match_action(want: str, got: str) -> bool:
    return any(alt.strip().lower() in got.lower() for alt in want.split("|"))


def _actions(e: Expectations, o: Outcome) -> list[Check]:
    out = []
    got = o.actions
    if e.actions is not None:
        i = 0
        for a in got:
            if i < len(e.actions) and _match_action(e.actions[i], a):
                i += 1
        out.append(Check("actions", i == len(e.actions), f"actions in order {e.actions}", str(got)))
    if e.actions_absent is not None:
        bad = [a for a in got if any(_match_action(w, a) for w in e.actions_absent)]
        out.append(Check("actions_absent", not bad, f"none of {e.actions_absent}", str(got)))
    if e.count is not None:
        n = sum(1 for a in got if _match_action(e.count.action, a))
        text = o.spec.description.text.lower() if o.spec else ""
        words = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times", 6: "six times"}
        said = f"{e.count.n} times" in text or words.get(e.count.n, "\0") in text
        out.append(Check("count", n == e.count.n or (n >= 1 and said), f"{e.count.action} {e.count.n} time(s)",
                         f"{n} matching segment(s) of {got}, text {text!r}"))
    if e.segments_min is not None:
        out.append(Check("segments_min", len(got) >= e.segments_min, f"at least {e.segments_min} segments",
                         f"{len(got)}: {got}"))
    return out


def _style(e: Expectations, o: Outcome) -> list[Check]:
    if e.style is None:
        return []
    desc = o.spec.description if o.spec else None
    got = (desc.style or "") if desc else ""
    ok = desc is not None and (_match_action(e.style, got) or _match_action(e.style, desc.text))
    return [Check("style", ok, f"style {e.style!r}", f"style {got!r}, text {desc.text if desc else None!r}")]


def _duration(e: Expectations, o: Outcome) -> list[Check]:
    if e.duration_s is None:
        return []
    d = o.spec.description.duration_s if o.spec else None
    return [Check("duration_s", d is not None and _in(d, e.duration_s), _fmt_range(e.duration_s, " s"),
                  "no spec" if d is None else f"{d:.2f} s")]


def _keyframe_times(e: Expectations, o: Outcome) -> list[Check]:
    if e.keyframe_times is None:
        return []
    # The photos' keyframes: key poses the agents add from the words (source "words:...") are theirs.
    got = sorted(k.time_s for k in o.spec.keyframes if not k.source.startswith("words:")) if o.spec else []
    want = sorted(e.keyframe_times)
    ok = len(got) == len(want) and all(abs(a - b) <= e.keyframe_time_tol_s for a, b in zip(got, want, strict=True))
    return [Check("keyframe_times", ok, f"{want} s (±{e.keyframe_time_tol_s:g})", f"{[round(t, 2) for t in got]} s")]


def path_stats(o: Outcome) -> dict[str, float] | None:
    """The planned path's length, displacement, end direction and net turn (None without a spec)."""
    if o.spec is None:
        return None
    traj = o.spec.trajectory
    pos = traj.positions_array()[traj.mask_array()] if traj is not None else np.zeros((1, 3))
    end = pos[-1] - pos[0] if len(pos) else np.zeros(3)
    disp = float(np.hypot(end[0], end[2]))
    plan = o.plan or (traj.plan if traj is not None else None)
    turn = 0.0
    if plan is not None:
        from ikmo.tools.trajectory import end_heading_deg

        turn = end_heading_deg(plan)
    return {"length_m": path_length(pos), "displacement_m": disp,
            "direction_deg": float(math.degrees(math.atan2(end[0], end[2]))) if disp > 1e-3 else 0.0,
            "net_turn_deg": turn}


def _path(p: PathExpect, o: Outcome) -> list[Check]:
    stats = path_stats(o)
    out = []
    for name, unit in (("length_m", " m"), ("displacement_m", " m"), ("direction_deg", "°"), ("net_turn_deg", "°")):
        r = getattr(p, name)
        if r is None:
            continue
        v = None if stats is None else stats[name]
        # a direction has no unique number (180 = -180): any of v, v ± 360 in the range will do
        ok = v is not None and (any(_in(v + k, r) for k in (-360.0, 0.0, 360.0)) if name == "direction_deg"
                                else _in(v, r))
        out.append(Check(f"path.{name}", ok, _fmt_range(r, unit), "no spec" if v is None else f"{v:.2f}{unit}"))
    if p.net_turn_abs_deg is not None:
        v = None if stats is None else abs(stats["net_turn_deg"])
        out.append(Check("path.net_turn_abs_deg", v is not None and _in(v, p.net_turn_abs_deg),
                         _fmt_range(p.net_turn_abs_deg, "°"), "no spec" if v is None else f"{v:.0f}°"))
    if p.shape is not None:
        plan = o.plan or (o.spec.trajectory.plan if o.spec and o.spec.trajectory else None)
        kinds = [q.kind for q in plan.primitives] if plan is not None else []
        ok = len(kinds) == len(p.shape) and all(_match_action(w, k) for w, k in zip(p.shape, kinds, strict=True))
        out.append(Check("path.shape", ok, str(p.shape), str(kinds)))
    if p.stands is not None:
        length = stats["length_m"] if stats else None
        still = length is not None and length < STANDING_PATH_M
        out.append(Check("path.stands", still == p.stands, "a standing motion" if p.stands else "a path",
                         "no spec" if length is None else f"path {length:.2f} m"))
    return out


def _said(want: str, text: str) -> bool:
    return any(alt.strip().lower() in text for alt in want.split("|"))


def _says(e: Expectations, o: Outcome) -> list[Check]:
    out = []
    said = o.said
    short = said.replace("\n", " | ")[:300]
    for s in e.says or []:
        out.append(Check("says", _said(s, said), f"the answer or notes say {s!r}", repr(short)))
    if e.says_any:
        ok = any(_said(s, said) for s in e.says_any)
        out.append(Check("says_any", ok, f"one of {e.says_any} said", repr(short)))
    for s in e.not_says or []:
        out.append(Check("not_says", s.lower() not in said, f"never says {s!r}", repr(short)))
    for s in e.error_contains or []:
        err = (o.error or "").lower()
        out.append(Check("error_contains", _said(s, err) and "\n" not in err.strip(),
                         f"a one-line error containing {s!r}", repr((o.error or "no error")[:300])))
    for s in e.question_contains or []:
        q = (o.question or "").lower()
        out.append(Check("question_contains", _said(s, q), f"a question containing {s!r}",
                         repr((o.question or "no question")[:300])))
    return out


# --------------------------------------------------------------------------- motion checks


def _wrist(w: WristExpect, o: Outcome, joints: np.ndarray) -> Check:
    fps, n = o.fps, len(joints)
    if w.at_s is not None:
        lo, hi = w.at_s - 0.3, w.at_s + 0.3
        where = f"at {w.at_s:g} s (±0.3)"
    elif w.during is not None:
        lo, hi = w.during
        where = f"during [{lo:g}, {hi:g}] s"
    elif w.at_end:
        lo, hi = (n - 1) / fps - 1.0, (n - 1) / fps
        where = "in the last second"
    else:
        lo, hi = 0.0, (n - 1) / fps
        where = "at some time"
    frames = np.arange(n)
    sel = (frames / fps >= lo - 1e-9) & (frames / fps <= hi + 1e-9)
    head = joints[:, HEAD, 1]
    above_l, above_r = joints[:, L_WRIST, 1] > head, joints[:, R_WRIST, 1] > head
    above = {"left": above_l, "right": above_r, "both": above_l & above_r, "either": above_l | above_r}[w.hand]
    ok = bool((above & sel).any())
    margin = np.maximum(joints[:, L_WRIST, 1], joints[:, R_WRIST, 1]) - head
    if w.hand == "both":
        margin = np.minimum(joints[:, L_WRIST, 1], joints[:, R_WRIST, 1]) - head
    elif w.hand in ("left", "right"):
        margin = joints[:, L_WRIST if w.hand == "left" else R_WRIST, 1] - head
    best = float(margin[sel].max()) if sel.any() else float("nan")
    return Check("motion.wrist_above_head", ok, f"{w.hand} wrist above the head {where}",
                 f"highest wrist {best * 100:+.0f} cm relative to the head there")


def _motion(m: MotionExpect, o: Outcome) -> list[Check]:
    names = [k for k, v in m.model_dump().items() if v is not None]
    if o.joints is None:
        return [Check(f"motion.{k}", False, "a motion", "no motion") for k in names]
    j = np.asarray(o.joints, dtype=np.float64)
    out: list[Check] = []
    fps = o.fps
    if m.duration_s is not None:
        d = (len(j)) / fps
        out.append(Check("motion.duration_s", _in(d, m.duration_s), _fmt_range(m.duration_s, " s"), f"{d:.2f} s"))
    if m.pelvis_travel_m is not None:
        v = path_length(j[:, 0])
        out.append(Check("motion.pelvis_travel_m", _in(v, m.pelvis_travel_m), _fmt_range(m.pelvis_travel_m, " m"),
                         f"{v:.2f} m"))
    if m.displacement_m is not None:
        v = float(np.hypot(*(j[-1, 0, [0, 2]] - j[0, 0, [0, 2]])))
        out.append(Check("motion.displacement_m", _in(v, m.displacement_m), _fmt_range(m.displacement_m, " m"),
                         f"{v:.2f} m"))
    if m.heading_change_deg is not None:
        v = heading_change_deg(j)
        out.append(Check("motion.heading_change_deg", _in(v, m.heading_change_deg),
                         _fmt_range(m.heading_change_deg, "°"), f"{v:.0f}°"))
    if m.faces_travel_max_deg is not None:
        mean, n = facing_vs_travel(j, fps)
        out.append(Check("motion.faces_travel", mean is not None and mean <= m.faces_travel_max_deg,
                         f"facing within {m.faces_travel_max_deg:g}° of the direction of travel (mean)",
                         "no frame above 0.3 m/s" if mean is None else f"{mean:.0f}° over {n} moving frames"))
    if m.wrist_above_head is not None:
        out.append(_wrist(m.wrist_above_head, o, j))
    if m.keyframe_mpjpe_max_m is not None:
        errs = [keyframe_truth_error(j, p, fps) for p in o.photos if p.time_s is not None]
        ok = bool(errs) and len(errs) == len(o.photos) and max(errs) <= m.keyframe_mpjpe_max_m
        out.append(Check("motion.keyframe_mpjpe", ok, f"each photo's true pose within {m.keyframe_mpjpe_max_m:g} m",
                         f"{[round(e, 3) for e in errs]} m over {len(o.photos)} photo(s)"))
    for key, metric, label in (("traj_err_max_m", "traj_err_mean", "trajectory error"),
                               ("keyframe_err_max_m", "keyframe_mpjpe", "keyframe error"),
                               ("foot_skating_max", "foot_skating_ratio", "foot skating ratio")):
        lim = getattr(m, key)
        if lim is None:
            continue
        got = o.metrics.get(metric)
        ok = got is None or (math.isfinite(got) and got <= lim)  # not measured = no such constraint
        out.append(Check(f"motion.{key}", ok, f"{label} ≤ {lim:g}", "not measured" if got is None else f"{got:.3f}"))
    if m.text_similarity_min is not None:
        s = o.text_similarity
        out.append(Check("motion.text_similarity", s is not None and s >= m.text_similarity_min,
                         f"evaluator similarity ≥ {m.text_similarity_min:g}",
                         "not measured" if s is None else f"{s:.3f}"))
    return out


def _vs_previous(v: VsPrevious, o: Outcome) -> list[Check]:
    p = o.previous
    if p is None or p.spec is None or o.spec is None:
        return [Check("vs_previous", False, "this turn and the one before both made a motion",
                      f"previous {None if p is None else p.status}, this {o.status}")]
    out = []
    d0, d1 = p.spec.description.duration_s, o.spec.description.duration_s
    if v.duration_ratio is not None:
        out.append(Check("vs_previous.duration_ratio", _in(d1 / d0, v.duration_ratio),
                         _fmt_range(v.duration_ratio), f"{d1:.2f} s / {d0:.2f} s = {d1 / d0:.2f}"))
    if v.speed_ratio is not None:
        s0, s1 = ((path_stats(x) or {}).get("length_m", 0.0) / x.spec.description.duration_s  # type: ignore[union-attr]
                  for x in (p, o))
        r = s1 / s0 if s0 > 1e-6 else float("inf")
        out.append(Check("vs_previous.speed_ratio", _in(r, v.speed_ratio), _fmt_range(v.speed_ratio),
                         f"{s1:.2f} / {s0:.2f} m/s = {r:.2f}"))
    for a in v.actions_added or []:
        now = any(_match_action(a, x) for x in o.actions)
        before = any(_match_action(a, x) for x in p.actions)
        out.append(Check("vs_previous.actions_added", now and not before, f"{a!r} added",
                         f"before {p.actions}, now {o.actions}"))
    return out


SpecCheck = Callable[[Expectations, Outcome], list[Check]]
SPEC_CHECKS: tuple[SpecCheck, ...] = (_status, _actions, _style, _duration, _keyframe_times, _says)


def check_case(e: Expectations, o: Outcome) -> list[Check]:
    """Every expectation of `e` on outcome `o`, in a fixed order: status, spec, what was said, motion."""
    out: list[Check] = []
    for fn in SPEC_CHECKS:
        out.extend(fn(e, o))
    if e.path is not None:
        out.extend(_path(e.path, o))
    if e.motion is not None:
        out.extend(_motion(e.motion, o))
    if e.vs_previous is not None:
        out.extend(_vs_previous(e.vs_previous, o))
    return out
