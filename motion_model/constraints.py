"""The domain types every layer shares: one home for each concept (docs/architecture.md, "Core types").

Pydantic models, JSON-serialisable, validated on construction. The motion model tool takes a
`MotionSpec` and nothing else; `ControlSignals` is its tensor form with explicit masks.

Frame conventions: `n_frames` is the number of pose frames T of the motion (joints (T, 22, 3));
frame i is at time i / fps. A constraint at time t lands on frame round(t * fps).
Constraints never encode "absent" as zeros: every constraint tensor comes with a boolean mask.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ikmo.motion_model.errors import ConstraintError
from ikmo.motion_model.limits import MAX_DURATION_S, MAX_FPS, MAX_GUIDANCE_SCALE, MAX_OPTIMIZATION_STEPS, MAX_SEED
from ikmo.motion_model.representation.skeleton import FPS, HUMANML3D_22

if TYPE_CHECKING:  # the domain types stay importable without torch (the agents' process never loads it)
    import torch

N_JOINTS = HUMANML3D_22.n_joints
MAX_MOTION_FRAMES = int(round(MAX_DURATION_S * FPS))  # 2400 pose frames (limits.MAX_DURATION_S = 120 s)
WINDOW_OVERLAP_FRAMES = 40  # 2 s shared by consecutive windows (long_sampling); a continued motion has at least these
MAX_PELVIS_SPEED = 8.0  # m/s, faster than a sprinter: a constraint asking for more is an error
PELVIS_HEIGHT_RANGE = (0.2, 1.6)  # m, lying-ish to jumping


def _finite(values: list[float] | list[list[float]], what: str) -> None:
    if not np.isfinite(np.asarray(values, dtype=np.float64)).all():
        raise ValueError(f"{what} contains NaN or infinity; give finite numbers")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True)


# --------------------------------------------------------------------------- description


class Segment(_Model):
    """One action of an ordered description, e.g. ("walk", 0.0, 3.0)."""

    action: str = Field(min_length=1, description="short action phrase, corpus vocabulary")
    start_s: float = Field(ge=0)
    end_s: float = Field(gt=0)
    text: str | None = Field(default=None, description="the full sentence for this segment")

    @model_validator(mode="after")
    def _ordered(self) -> Segment:
        if self.end_s <= self.start_s:
            raise ValueError(f"segment {self.action!r} ends ({self.end_s}) before it starts ({self.start_s})")
        return self


class MotionDescription(_Model):
    """What the motion model reads: a HumanML3D-style sentence, a duration, optional segments."""

    text: str = Field(min_length=1, description="the phrase given to the model")
    duration_s: float = Field(gt=0, le=MAX_DURATION_S)
    segments: list[Segment] = Field(default_factory=list)
    style: str | None = None

    @model_validator(mode="after")
    def _segments_inside(self) -> MotionDescription:
        prev_end = 0.0
        for seg in self.segments:
            if seg.end_s > self.duration_s + 1e-6:
                raise ValueError(f"segment {seg.action!r} ends at {seg.end_s}s, after the {self.duration_s}s motion")
            if seg.start_s < prev_end - 1e-6:
                raise ValueError("segments must be ordered and must not overlap")
            prev_end = seg.end_s
        return self


    def timed_texts(self, fps: float = FPS) -> list[TimedText]:
        """The segments as texts conditioning their own frames (HumanML3D phrasing: "a person ...").

        Empty unless there are two or more segments: one segment says what `text` says.
        """
        if len(self.segments) < 2:
            return []
        out = []
        for seg in self.segments:
            phrase = (seg.text or seg.action.replace("-", " ")).strip().rstrip(".")
            if not phrase.lower().startswith(("a ", "the ", "person", "someone")):
                phrase = f"a person {phrase}"
            out.append(TimedText(text=phrase, start=round(seg.start_s * fps), end=round(seg.end_s * fps)))
        return out


class TimedText(_Model):
    """A text that conditions pose frames [start, end) of a motion (timed segment conditioning)."""

    text: str = Field(min_length=1)
    start: int = Field(ge=0)
    end: int = Field(gt=0)


# --------------------------------------------------------------------------- keyframe pose


class KeyframePose(_Model):
    """A pose the motion must strike at `time_s`.

    `joints` are (22, 3) metres, root-relative (pelvis at the origin) in the canonical facing
    (+Z forward, +X left, y up). `joint_mask` says which joints are constrained (an upper-body
    photo constrains no legs); `confidence` weights them. `root_position`, when known, pins the
    pelvis in world coordinates too.
    """

    time_s: float = Field(ge=0)
    joints: list[list[float]]
    joint_mask: list[bool] = Field(default_factory=lambda: [True] * N_JOINTS)
    confidence: list[float] = Field(default_factory=lambda: [1.0] * N_JOINTS)
    smpl_pose: list[list[float]] | None = Field(default=None, description="(21, 3) SMPL body_pose axis-angle")
    global_orient: list[float] | None = Field(default=None, description="(3,) axis-angle")
    root_position: list[float] | None = Field(default=None, description="(3,) world pelvis, metres")
    source: str = "manual"
    notes: list[str] = Field(default_factory=list)

    @field_validator("joints")
    @classmethod
    def _joints_shape(cls, v: list[list[float]]) -> list[list[float]]:
        if len(v) != N_JOINTS or any(len(r) != 3 for r in v):
            raise ValueError(f"joints must be {N_JOINTS}x3, got {len(v)} rows")
        _finite(v, "keyframe joints")
        return v

    @field_validator("joint_mask")
    @classmethod
    def _mask_shape(cls, v: list[bool]) -> list[bool]:
        if len(v) != N_JOINTS:
            raise ValueError(f"joint_mask must have {N_JOINTS} entries")
        if not any(v):
            raise ValueError("a keyframe with no constrained joints constrains nothing; drop it or mask some joints in")
        return v

    @field_validator("confidence")
    @classmethod
    def _conf_shape(cls, v: list[float]) -> list[float]:
        if len(v) != N_JOINTS:
            raise ValueError(f"confidence must have {N_JOINTS} entries")
        _finite(v, "confidence")
        if any(c < 0 or c > 1 for c in v):
            raise ValueError("confidence values must lie in [0, 1]")
        return v

    @field_validator("smpl_pose")
    @classmethod
    def _pose_shape(cls, v: list[list[float]] | None) -> list[list[float]] | None:
        if v is not None:
            if len(v) != N_JOINTS - 1 or any(len(r) != 3 for r in v):
                raise ValueError("smpl_pose must be 21x3 axis-angle")
            _finite(v, "smpl_pose")
        return v

    @field_validator("global_orient", "root_position")
    @classmethod
    def _vec3(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            if len(v) != 3:
                raise ValueError("must be 3 numbers")
            _finite(v, "vector")
        return v

    def joints_array(self) -> np.ndarray:
        """(22, 3) float32 root-relative joints."""
        return np.asarray(self.joints, dtype=np.float32)


# --------------------------------------------------------------------------- trajectory plan


class _Primitive(_Model):
    duration_s: float | None = Field(
        default=None, gt=0, description="time this piece takes; None shares the remaining time evenly"
    )


class Line(_Primitive):
    """Walk straight `distance_m` towards `direction_deg` (0 = the way the character faces, +90 = its left)."""

    kind: Literal["line"] = "line"
    distance_m: float = Field(ge=0)
    direction_deg: float = 0.0


class Arc(_Primitive):
    """Walk along a circular arc of `radius_m` turning `angle_deg` to the `turn` side."""

    kind: Literal["arc"] = "arc"
    radius_m: float = Field(gt=0)
    angle_deg: float = Field(gt=0, le=720)
    turn: Literal["left", "right"] = "left"


class Circle(_Primitive):
    """A full circle (or `turns` of them) of `radius_m` to the `turn` side."""

    kind: Literal["circle"] = "circle"
    radius_m: float = Field(gt=0)
    turns: float = Field(default=1.0, gt=0, le=4)
    turn: Literal["left", "right"] = "left"


class Zigzag(_Primitive):
    """Advance `distance_m` while swinging `amplitude_m` sideways `n_legs` times."""

    kind: Literal["zigzag"] = "zigzag"
    distance_m: float = Field(gt=0)
    amplitude_m: float = Field(gt=0)
    n_legs: int = Field(default=4, ge=2, le=20)
    direction_deg: float = 0.0


class Waypoints(_Primitive):
    """Pass through these (x, z) points, metres, in the canonical start frame."""

    kind: Literal["waypoints"] = "waypoints"
    points_xz: list[tuple[float, float]] = Field(min_length=1)


class Stand(_Primitive):
    """Stay in place."""

    kind: Literal["stand"] = "stand"


Primitive = Annotated[Line | Arc | Circle | Zigzag | Waypoints | Stand, Field(discriminator="kind")]


class TrajectoryPlan(_Model):
    """A parametric pelvis path: primitives in order, from the origin, facing +Z."""

    primitives: list[Primitive] = Field(min_length=1)


class Trajectory(_Model):
    """A pelvis path: the plan it came from (if any) and its dense per-frame form.

    `positions` is (T, 3) metres in world coordinates; `mask` (T,) says which frames are
    constrained (a sparse trajectory of 3 waypoints has 3 True frames). `control_height` says
    whether y is constrained too or only the ground-plane xz. `facing` (T,) is the direction the
    body faces, radians from +Z towards +X (unwrapped: a full circle ends at ±2π), where
    `facing_mask` (T,) says so: the path's tangent while walking forwards, the heading kept while
    side-stepping or walking backwards; None when the path does not say (a trajectory given as
    bare positions).
    """

    plan: TrajectoryPlan | None = None
    fps: float = Field(default=FPS, gt=0, le=MAX_FPS, allow_inf_nan=False)
    positions: list[list[float]]
    mask: list[bool]
    control_height: bool = False
    facing: list[float] | None = None
    facing_mask: list[bool] | None = None

    @model_validator(mode="after")
    def _dense_consistent(self) -> Trajectory:
        if len(self.positions) != len(self.mask):
            raise ValueError(f"trajectory has {len(self.positions)} positions but {len(self.mask)} mask entries")
        if any(len(p) != 3 for p in self.positions):
            raise ValueError("trajectory positions must be (T, 3)")
        _finite(self.positions, "trajectory")
        if (self.facing is None) != (self.facing_mask is None):
            raise ValueError("give both facing and facing_mask, or neither")
        if self.facing is not None and self.facing_mask is not None:
            if not len(self.facing) == len(self.facing_mask) == len(self.positions):
                raise ValueError(f"trajectory facing has {len(self.facing)} entries and facing_mask "
                                 f"{len(self.facing_mask)}, the positions {len(self.positions)}")
            _finite([self.facing], "trajectory facing")
        return self

    def positions_array(self) -> np.ndarray:
        return np.asarray(self.positions, dtype=np.float32).reshape(-1, 3)

    def mask_array(self) -> np.ndarray:
        return np.asarray(self.mask, dtype=bool)


# --------------------------------------------------------------------------- spec and result


class GenerationOptions(_Model):
    """Knobs of one generation; None means the model's configured default."""

    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    guidance_scale: float | None = Field(default=None, ge=0, le=MAX_GUIDANCE_SCALE, allow_inf_nan=False,
                                         description="classifier-free guidance")
    optimization_steps: int | None = Field(default=None, ge=0, le=MAX_OPTIMIZATION_STEPS)
    use_controlnet: bool = True
    use_optimization: bool = True
    exact_projection: bool = Field(
        default=True, description="stage 1 ends with the exact projection onto the path and keyframes; false: "
                                  "gradient steps only (the paper's form: L-BFGS, ~0.5 s slower, within ~1 cm)")


class MotionPrefix(_Model):
    """An earlier motion this one continues: its `n_frames` frames (a `joints.npy`, (n_frames, 22, 3)
    metres) are this motion's first frames — exactly, but for the last second, cross-faded into what
    follows — and the rest is in-painted from their end (`long_sampling.sample_long`). A chat
    follow-up "then wave" extends the motion this way."""

    joints_path: str = Field(min_length=1)
    n_frames: int = Field(ge=WINDOW_OVERLAP_FRAMES, le=MAX_MOTION_FRAMES)


class MotionSpec(_Model):
    """Everything the motion model needs; the only input `tools.generate_motion` takes."""

    description: MotionDescription
    keyframes: list[KeyframePose] = Field(default_factory=list)
    trajectory: Trajectory | None = None
    fps: float = Field(default=FPS, gt=0, le=MAX_FPS, allow_inf_nan=False)
    n_frames: int = Field(ge=2, le=MAX_MOTION_FRAMES)
    options: GenerationOptions = Field(default_factory=GenerationOptions)
    prefix: MotionPrefix | None = None

    @classmethod
    def from_description(cls, description: MotionDescription, **kw: object) -> MotionSpec:
        return cls(description=description, n_frames=duration_to_frames(description.duration_s), **kw)  # type: ignore[arg-type]

    def frame_of(self, time_s: float) -> int:
        return int(round(time_s * self.fps))

    def check(self) -> None:
        """Raise `ConstraintError` for a spec that must not be sampled (before any sampling).

        Checks the time range of keyframes and trajectory, pelvis speed and height. A spec that
        passes may still be infeasible in practice; the model then returns its measured errors.
        """
        duration = (self.n_frames - 1) / self.fps
        if self.prefix is not None and self.prefix.n_frames >= self.n_frames:
            raise ConstraintError(f"the motion continues a {self.prefix.n_frames}-frame motion but has only "
                                  f"{self.n_frames} frames; make it longer than the motion it continues")
        for i, kf in enumerate(self.keyframes):
            if kf.time_s > duration + 0.5 / self.fps:
                raise ConstraintError(
                    f"keyframe {i} is at {kf.time_s:.2f}s but the motion lasts {duration:.2f}s; "
                    "move the keyframe earlier or make the motion longer"
                )
        times = [kf.time_s for kf in self.keyframes]
        if times != sorted(times):
            raise ConstraintError("keyframes must be in time order; sort them by time_s")
        if self.trajectory is not None:
            pos = self.trajectory.positions_array()
            mask = self.trajectory.mask_array()
            if len(pos) != self.n_frames:
                raise ConstraintError(
                    f"trajectory has {len(pos)} frames but the motion has {self.n_frames}; "
                    "resample the trajectory to the motion length"
                )
            idx = np.flatnonzero(mask)
            if len(idx) >= 2:
                d = np.linalg.norm(np.diff(pos[idx][:, [0, 2]], axis=0), axis=1)
                dt = np.diff(idx) / self.fps
                speed = float((d / dt).max())
                if speed > MAX_PELVIS_SPEED:
                    raise ConstraintError(
                        f"the trajectory asks for a pelvis speed of {speed:.1f} m/s (limit {MAX_PELVIS_SPEED}); "
                        "shorten the path or lengthen the motion"
                    )
            if self.trajectory.control_height and len(idx):
                y = pos[idx, 1]
                lo, hi = PELVIS_HEIGHT_RANGE
                if y.min() < lo or y.max() > hi:
                    raise ConstraintError(
                        f"pelvis height must stay within {lo}-{hi} m, the trajectory asks for "
                        f"{y.min():.2f}-{y.max():.2f} m"
                    )

    def to_control(self, device: torch.device | None = None) -> ControlSignals:
        """Dense tensor form with explicit masks; see `ControlSignals`."""
        import torch

        self.check()
        T = self.n_frames
        traj = torch.zeros(T, 3)
        traj_mask = torch.zeros(T, 3, dtype=torch.bool)
        heading = torch.zeros(T)
        heading_mask = torch.zeros(T, dtype=torch.bool)
        if self.trajectory is not None and self.trajectory.facing is not None:
            heading = torch.as_tensor(self.trajectory.facing, dtype=torch.float32)
            heading_mask = torch.as_tensor(self.trajectory.facing_mask, dtype=torch.bool)
        if self.trajectory is not None:
            traj = torch.as_tensor(self.trajectory.positions_array())
            m = torch.as_tensor(self.trajectory.mask_array())
            traj_mask[:, 0] = m
            traj_mask[:, 2] = m
            if self.trajectory.control_height:
                traj_mask[:, 1] = m
        pose = torch.zeros(T, N_JOINTS, 3)
        pose_mask = torch.zeros(T, N_JOINTS, dtype=torch.bool)
        pose_weight = torch.zeros(T, N_JOINTS)
        for kf in self.keyframes:
            f = min(self.frame_of(kf.time_s), T - 1)
            pose[f] = torch.as_tensor(kf.joints_array())
            pose_mask[f] = torch.as_tensor(kf.joint_mask)
            pose_weight[f] = torch.as_tensor(kf.confidence, dtype=torch.float32) * pose_mask[f]
            if kf.root_position is not None:
                traj[f] = torch.as_tensor(kf.root_position, dtype=torch.float32)
                traj_mask[f] = True
        out = ControlSignals(traj, traj_mask, pose, pose_mask, pose_weight, heading, heading_mask)
        return out.to(device) if device is not None else out


class ControlSignals:
    """Constraint tensors for one motion of T frames, each with an explicit mask.

    traj: (T, 3) float32 world pelvis positions, metres.
    traj_mask: (T, 3) bool, which coordinates of which frames are constrained.
    pose: (T, 22, 3) float32 root-relative joints in the canonical facing.
    pose_mask: (T, 22) bool, which joints of which frames are constrained.
    pose_weight: (T, 22) float32 confidence, zero where unmasked.
    heading: (T,) float32 facing yaw, radians from +Z towards +X (unwrapped), where heading_mask.
    heading_mask: (T,) bool (default: no heading constraint).
    """

    def __init__(
        self,
        traj: torch.Tensor,
        traj_mask: torch.Tensor,
        pose: torch.Tensor,
        pose_mask: torch.Tensor,
        pose_weight: torch.Tensor,
        heading: torch.Tensor | None = None,
        heading_mask: torch.Tensor | None = None,
    ) -> None:
        import torch

        self.traj, self.traj_mask, self.pose, self.pose_mask, self.pose_weight = (
            traj, traj_mask, pose, pose_mask, pose_weight,
        )  # fmt: skip
        T = traj.shape[0]
        self.heading = heading if heading is not None else torch.zeros(T, device=traj.device)
        self.heading_mask = (heading_mask if heading_mask is not None
                             else torch.zeros(T, dtype=torch.bool, device=traj.device))

    @property
    def n_frames(self) -> int:
        return int(self.traj.shape[0])

    def keyframe_indices(self) -> list[int]:
        import torch

        return torch.nonzero(self.pose_mask.any(-1)).flatten().tolist()

    def is_empty(self) -> bool:
        return not bool(self.traj_mask.any() or self.pose_mask.any() or self.heading_mask.any())

    def to(self, device: torch.device) -> ControlSignals:
        return ControlSignals(*(t.to(device) for t in (self.traj, self.traj_mask, self.pose, self.pose_mask,
                                                         self.pose_weight, self.heading, self.heading_mask)))


class MotionResult(_Model):
    """What a generation returns: the files written, measured metrics, the spec and config used."""

    files: dict[str, str]
    metrics: dict[str, float] = Field(default_factory=dict)
    spec: MotionSpec
    config: dict[str, object] = Field(default_factory=dict)
    attempts: list[dict[str, object]] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


def duration_to_frames(duration_s: float, fps: float = FPS) -> int:
    """Number of pose frames for a duration, clamped to [2, MAX_MOTION_FRAMES] (2400: 120 s)."""
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise ConstraintError(f"duration must be a positive number of seconds, got {duration_s}")
    return max(2, min(MAX_MOTION_FRAMES, int(round(duration_s * fps))))
