"""Graph state: a TypedDict of the pydantic domain objects (artefacts as file paths, never tensors).

Reducers say how parallel branches merge: each keyframe branch writes its own image index into
`keyframes`; lists (`transcript`, `attempts`, `notes`) accumulate, and `restart(...)` starts one
anew at a conversation's next turn (the only place that knows how: `accumulate`).
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, Literal, NotRequired, TypedDict

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ikmo.motion_model.constraints import (
    MAX_DURATION_S,
    GenerationOptions,
    KeyframePose,
    MotionDescription,
    MotionResult,
    MotionSpec,
    Trajectory,
    TrajectoryPlan,
)
from ikmo.motion_model.limits import MAX_SEED

Agent = Literal["describe", "keyframe_pose", "trajectory"]

MAX_TEXT_CHARS = 4000  # a request's words (a paragraph); longer is a paste by mistake
MAX_IMAGES = 8  # keyframe photos per request
MAX_PATH_POINTS = 500  # points of a drawn pelvis path (the studio thins a mouse stroke to fewer)
MAX_PATH_EXTENT_M = 25.0  # a drawn path stays this close to the start (the studio's floor is 20 m wide)


def is_valid_unicode(text: str) -> bool:
    """False for text that cannot be written as UTF-8 (lone surrogates: undecodable argv or JSON bytes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unicode_text(v: str) -> str:
    if not is_valid_unicode(v):
        raise ValueError("the text holds characters that are not valid Unicode (undecodable bytes); fix its encoding")
    return v


# A request's words (CLI, chat, HTTP): at most MAX_TEXT_CHARS, writable as UTF-8; over HTTP, not empty.
RequestText = Annotated[str, Field(max_length=MAX_TEXT_CHARS), AfterValidator(_unicode_text)]
NonEmptyRequestText = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_unicode_text)]


def _on_floor(v: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if not all(math.isfinite(c) and abs(c) <= MAX_PATH_EXTENT_M for p in v for c in p):
        raise ValueError(f"every point of a drawn path must lie on the floor within {MAX_PATH_EXTENT_M:g} m of the "
                         "start")
    return v


# A pelvis path drawn on the floor: 2 to MAX_PATH_POINTS (x, z) points, metres, near the start.
FloorPath = Annotated[list[tuple[float, float]], Field(min_length=2, max_length=MAX_PATH_POINTS),
                      AfterValidator(_on_floor)]


class ImageRef(BaseModel):
    """A keyframe photo; `time_s` None = the agents choose the time (text hints, image order)."""

    model_config = ConfigDict(extra="forbid")
    path: str
    time_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class MotionRequest(BaseModel):
    """What the user asked for. `out_dir` is the only folder the run writes into."""

    model_config = ConfigDict(extra="forbid")
    text: RequestText
    images: list[ImageRef] = Field(default_factory=list, max_length=MAX_IMAGES)
    duration_s: float | None = Field(default=None, gt=0, le=MAX_DURATION_S, allow_inf_nan=False)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    out_dir: str
    # A pelvis path the user drew on the floor, (x, z) metres from the start (the studio): it is the
    # trajectory, in place of the trajectory agent's plan.
    path_xz: FloorPath | None = None


class InputState(TypedDict):
    """What a caller gives the graph: a request, and in a conversation the follow-up it edits with."""

    request: MotionRequest
    followup: NotRequired[str | None]


class Event(BaseModel):
    """One line of the transcript: what a node did, when (Unix seconds), with optional details."""

    model_config = ConfigDict(extra="forbid")
    t: float
    node: str
    message: str
    data: dict[str, Any] | None = None

    @classmethod
    def now(cls, node: str, message: str, **data: Any) -> Event:
        return cls(t=round(time.time(), 3), node=node, message=message, data=data or None)


class Attempt(BaseModel):
    """One generation attempt: what it was asked (options, the critic's change), where its files
    are, what it measured, and the critic's view of it (problems, score: lower is better)."""

    model_config = ConfigDict(extra="forbid")
    attempt: int
    dir: str
    options: GenerationOptions
    change: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    problems: list[str] = Field(default_factory=list)
    score: tuple[int, float] | None = None
    seconds: float | None = None
    # What the sampler actually used (the model's defaults where the options say None): the critic's
    # stronger guidance multiplies these, not a copy of the defaults.
    guidance_scale: float | None = None
    optimization_steps: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Validation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ok: bool
    error: str | None = None
    fault: Agent | None = None
    action: Literal["generate", "retry", "ask", "fail"] = "generate"


def merge_keyframes(old: dict[str, KeyframePose] | None, new: dict[str, KeyframePose | None] | None
                    ) -> dict[str, KeyframePose]:
    """Keyed by image index (as a string); a None value drops that image's keyframe."""
    out = dict(old or {})
    for k, v in (new or {}).items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


_RESET = "__reset__"


def restart(*items: Any) -> list[Any]:
    """An update that replaces an accumulated list with `items` (a new conversation turn starts clean)."""
    return [_RESET, *items]


def accumulate(old: list[Any] | None, new: list[Any] | None) -> list[Any]:
    """Append; an update made by `restart` replaces the list."""
    if new and isinstance(new[0], str) and new[0] == _RESET:
        return list(new[1:])
    return list(old or []) + list(new or [])


def merge_counts(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    """Per-key last write wins (retry counters, feedback and failures per agent)."""
    out = dict(old or {})
    for k, v in (new or {}).items():
        out[k] = v
    return out


class KeyframeTask(TypedDict):
    """Input of one keyframe branch (sent with `Send`)."""

    index: int
    image: ImageRef
    time_s: float
    feedback: str | None
    text: NotRequired[str]  # the request, for the provider's look at the fit
    out_dir: NotRequired[str]  # where the fit's check image goes (when a provider looks at it)
    earlier_check: NotRequired[dict[str, Any]]  # this photo's check record from an earlier pass of the run


class GraphState(TypedDict, total=False):
    """State of one run (or one conversation thread)."""

    request: MotionRequest
    parsed: dict[str, Any]  # the offline parse (ParsedRequest as a dict), kept for follow-ups
    description: MotionDescription | None
    plan: TrajectoryPlan | None
    trajectory: Trajectory | None
    keyframes: Annotated[dict[str, KeyframePose], merge_keyframes]
    keyframe_checks: Annotated[dict[str, dict[str, Any]], merge_counts]  # image index → its fit check record
    spec: MotionSpec | None
    validation: Validation | None
    retries: Annotated[dict[str, int], merge_counts]
    feedback: Annotated[dict[str, str], merge_counts]
    failures: Annotated[dict[str, str], merge_counts]  # agent or "keyframe_pose:<i>" → error ("" = none)
    options: GenerationOptions
    critique_round: int
    result: MotionResult | None
    previous_result: MotionResult | None  # a follow-up's: the last turn's motion, which it may continue
    best_attempt: int | None
    decision: Literal["accept", "reseed", "stronger_guidance", "replan"] | None
    attempts: Annotated[list[Attempt], accumulate]
    transcript: Annotated[list[Event], accumulate]
    notes: Annotated[list[str], accumulate]
    status: Literal["running", "ok", "failed", "needs_input"]
    error: str | None
    answer: str | None
    followup: str | None
