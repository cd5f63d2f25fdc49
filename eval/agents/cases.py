"""The agent case suite: YAML files of cases, each a request and what its answer must satisfy.

A file holds `cases:` (a list) and optionally `category:` (the default of its cases) and
`defaults:` (expectations merged under each case's own). A case::

    id: seq-walk-then-wave            # unique in the suite
    category: sequencing              # one of CATEGORIES
    request:
      text: "walk forward 2 meters, then wave"
      photos: [{path: photos/p0_front.png, time_s: 2.0}]   # relative to the file; truth: beside it (.npy)
      duration_s: 6                   # optional
      turns: [{text: "make it slower", expect: {...}}]     # follow-ups: a conversation case
      chat: false                     # run as a conversation even without turns (questions instead of errors)
    expect: {...}                     # `Expectations`

A bad file is an `InputFileError` naming the file, the case and the field.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ikmo.motion_model.errors import InputFileError

log = logging.getLogger(__name__)

DEFAULT_CASES_DIR = Path(__file__).resolve().parents[1] / "cases" / "agents"

CATEGORIES = (
    "sequencing", "simultaneous", "counts", "distances", "durations", "speeds", "directions", "shapes", "turns",
    "styles", "timing", "photos", "multi_photo", "unsupported", "impossible", "ambiguous", "injection",
    "non_english", "followup", "long",
)

Range = tuple[float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _ordered(r: Range | None, name: str) -> None:
    if r is not None and r[0] > r[1]:
        raise ValueError(f"{name}: the range [{r[0]}, {r[1]}] is empty (low > high)")


class PathExpect(_Strict):
    """The planned pelvis path (the spec's trajectory): metres, degrees (+ = left)."""

    length_m: Range | None = Field(default=None, description="path length")
    displacement_m: Range | None = Field(default=None, description="straight distance start → end")
    direction_deg: Range | None = Field(default=None, description="direction of the end point from the start "
                                        "(0 = forward, +90 = left, ±180 = back)")
    net_turn_deg: Range | None = Field(default=None, description="heading at the end minus at the start")
    net_turn_abs_deg: Range | None = Field(default=None, description="|net turn|, either side")
    shape: list[str] | None = Field(default=None, description="the plan's primitive kinds, in order")
    stands: bool | None = Field(default=None, description="no trajectory at all, or a path under 0.3 m")

    @model_validator(mode="after")
    def _ranges(self) -> PathExpect:
        for name in ("length_m", "displacement_m", "direction_deg", "net_turn_deg", "net_turn_abs_deg"):
            _ordered(getattr(self, name), name)
        return self


class WristExpect(_Strict):
    """A wrist above the head (its y above the head joint's) at a time or in a window."""

    hand: Literal["left", "right", "both", "either"] = "either"
    at_s: float | None = Field(default=None, ge=0, description="within ±0.3 s of this time")
    during: Range | None = Field(default=None, description="at some frame in [a, b] seconds")
    at_end: bool = Field(default=False, description="in the last second")


class MotionExpect(_Strict):
    """Measured on the motion the user gets (joints.npy, features.npy, the run's metrics)."""

    pelvis_travel_m: Range | None = Field(default=None, description="ground-plane path length of the pelvis")
    displacement_m: Range | None = Field(default=None, description="pelvis start → end distance on the ground")
    heading_change_deg: Range | None = Field(default=None, description="body facing at the end minus the start")
    faces_travel_max_deg: float | None = Field(default=None, gt=0, description="mean angle between the body's "
                                               "facing and the pelvis velocity on frames faster than 0.3 m/s")
    wrist_above_head: WristExpect | None = None
    keyframe_mpjpe_max_m: float | None = Field(default=None, gt=0, description="each photo's truth pose vs the "
                                               "motion at the keyframe time, root-aligned, facing aligned")
    traj_err_max_m: float | None = Field(default=None, gt=0, description="mean trajectory constraint error")
    keyframe_err_max_m: float | None = Field(default=None, gt=0, description="keyframe constraint MPJPE")
    foot_skating_max: float | None = Field(default=None, gt=0, le=1)
    text_similarity_min: float | None = Field(default=None, ge=-1, le=1, description="evaluator cosine between "
                                              "the request text and the motion")
    duration_s: Range | None = Field(default=None, description="frames / fps of the motion")

    @model_validator(mode="after")
    def _ranges(self) -> MotionExpect:
        for name in ("pelvis_travel_m", "displacement_m", "heading_change_deg", "duration_s"):
            _ordered(getattr(self, name), name)
        return self


class ActionCount(_Strict):
    """An action done `n` times: n matching segments, or the description says so ("three times")."""

    action: str
    n: int = Field(ge=1, le=20)


class VsPrevious(_Strict):
    """A follow-up turn compared with the turn before it."""

    duration_ratio: Range | None = None
    speed_ratio: Range | None = Field(default=None, description="(path length / duration) ratio")
    actions_added: list[str] | None = None


class Expectations(_Strict):
    """What the user must get. Text matches are case-insensitive substrings."""

    status: Literal["ok", "failed", "question", "any"] = Field(default="ok", description="a motion, a clear "
                                                               "error (batch), a question (chat), or any")
    actions: list[str] | None = Field(default=None, description="segment actions, in this order (each a "
                                      "substring of one segment's action, '|' between alternatives)")
    actions_absent: list[str] | None = None
    segments_min: int | None = Field(default=None, ge=0)
    count: ActionCount | None = None
    style: str | None = Field(default=None, description="'|' between alternatives")
    duration_s: Range | None = None
    keyframe_times: list[float] | None = None
    keyframe_time_tol_s: float = Field(default=0.15, ge=0)
    path: PathExpect | None = None
    motion: MotionExpect | None = None
    says: list[str] | None = Field(default=None, description="each in the answer, notes, error or question "
                                   "('|' between alternatives)")
    says_any: list[str] | None = Field(default=None, description="at least one of these is said")
    not_says: list[str] | None = None
    error_contains: list[str] | None = None
    question_contains: list[str] | None = None
    vs_previous: VsPrevious | None = None

    @model_validator(mode="after")
    def _ranges(self) -> Expectations:
        _ordered(self.duration_s, "duration_s")
        return self


class Photo(_Strict):
    path: str
    time_s: float | None = Field(default=None, ge=0)
    truth: str | None = Field(default=None, description="(22, 3) joints .npy; default: the photo's stem + .npy")
    joints: Literal["all", "upper"] = Field(default="all", description="which joints the photo shows")


class Turn(_Strict):
    text: str = Field(min_length=1)
    expect: Expectations = Field(default_factory=Expectations)


class Request(_Strict):
    text: str = Field(min_length=1, max_length=4000)
    photos: list[Photo] = Field(default_factory=list, max_length=8)
    duration_s: float | None = Field(default=None, gt=0)
    seed: int = Field(default=0, ge=0)
    turns: list[Turn] = Field(default_factory=list)
    chat: bool = False

    @property
    def conversation(self) -> bool:
        return self.chat or bool(self.turns)


class Case(_Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    category: Literal[CATEGORIES]  # type: ignore[valid-type]
    request: Request
    expect: Expectations = Field(default_factory=Expectations)
    notes: str | None = Field(default=None, description="why the case exists (not checked)")
    source: str = Field(default="", description="the file it came from (set by the loader)")

    def photo_path(self, photo: Photo) -> Path:
        return (Path(self.source).parent / photo.path).resolve()

    def truth_path(self, photo: Photo) -> Path:
        p = self.photo_path(photo)
        return (p.parent / photo.truth).resolve() if photo.truth else p.with_suffix(".npy")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(case)"


def load_file(path: Path) -> list[Case]:
    """The cases of one YAML file. Raises InputFileError naming the file, the case and the field."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise InputFileError(f"{path}: not a readable YAML file: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
        raise InputFileError(f"{path}: expected a mapping with a list under 'cases'")
    unknown = set(doc) - {"cases", "category", "defaults"}
    if unknown:
        raise InputFileError(f"{path}: unknown top-level field(s) {', '.join(sorted(unknown))}; "
                             "use cases, category, defaults")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise InputFileError(f"{path}: defaults: expected a mapping")
    out = []
    for i, raw in enumerate(doc["cases"]):
        if not isinstance(raw, dict):
            raise InputFileError(f"{path}: cases[{i}]: expected a mapping, got {type(raw).__name__}")
        merged = _merge(defaults, raw)
        if "category" in doc and "category" not in raw:
            merged["category"] = doc["category"]
        merged["source"] = str(path.resolve())
        try:
            out.append(Case.model_validate(merged))
        except ValidationError as e:
            err = e.errors()[0]
            raise InputFileError(f"{path}: cases[{i}] (id {raw.get('id', '?')!r}): {_field(err['loc'])}: "
                                 f"{err['msg']}") from e
    return out


def load_cases(cases_dir: Path | None = None, category: list[str] | None = None,
               case_ids: list[str] | None = None) -> list[Case]:
    """Every case of the `*.yaml` files of `cases_dir` (sorted by file), filtered by category and id.

    Raises InputFileError for a bad file, a duplicate id, a photo that does not exist, or a filter
    that matches nothing."""
    root = Path(cases_dir) if cases_dir is not None else DEFAULT_CASES_DIR
    files = sorted(root.glob("*.yaml")) + sorted(root.glob("*.yml"))
    if not files:
        raise InputFileError(f"{root}: no case files (*.yaml)")
    cases: list[Case] = []
    seen: dict[str, str] = {}
    for f in files:
        for c in load_file(f):
            if c.id in seen:
                raise InputFileError(f"{f}: case id {c.id!r} is also in {seen[c.id]}")
            seen[c.id] = str(f)
            for j, ph in enumerate(c.request.photos):
                if not c.photo_path(ph).is_file():
                    raise InputFileError(f"{f}: case {c.id!r}: request.photos.{j}.path: {c.photo_path(ph)} "
                                         "does not exist")
            cases.append(c)
    if category:
        bad = sorted(set(category) - set(CATEGORIES))
        if bad:
            raise InputFileError(f"unknown categor{'y' if len(bad) == 1 else 'ies'} {', '.join(bad)}; "
                                 f"use one of {', '.join(CATEGORIES)}")
        cases = [c for c in cases if c.category in category]
    if case_ids:
        missing = sorted(set(case_ids) - {c.id for c in cases})
        if missing:
            raise InputFileError(f"no case {', '.join(missing)} in {root} (see `ikmo eval agents --list`)")
        cases = [c for c in cases if c.id in case_ids]
    return cases
