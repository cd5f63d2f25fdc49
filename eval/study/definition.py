"""The study file (`ikmo study build STUDY.yaml`): items, conditions, participants, seed.

A study file::

    name: paper_replay
    seed: 0                         # every stimulus seed is seed + the item's index
    participants: 10                # how many personal links `ikmo study serve` makes
    duration_s: 6                   # default of the items' durations (every video of an item has its length)
    conditions:                     # compared pairwise, item by item
      - name: no_agents             # the paper's baseline: the text straight to the model as its caption
      - name: agents                # the full pipeline (offline provider unless `provider` says)
      - {name: agents_smollm2, provider: smollm2}                 # another provider
      - {name: old_weights, pipeline: agents, weights: runs/base} # another model version
      - {name: no_critic, settings: {critique_rounds: 0}}         # another setting
    attention:                      # attention checks (optional; exclusions need them)
      identical: walk_wave          # this item's `agents` video on both sides
      misfit: {item: arc_wave, text: "lie down on the floor"}  # a motion that does not fit the request
    items:
      - id: walk_wave
        text: "walk forward 2 meters, then wave"
        photos: [{path: ../cases/agents/photos/p0_front.png, time_s: 4.0}]   # relative to this file
        duration_s: 6
        expect: {pelvis_travel_m: [1.6, 2.6]}    # optional: `eval.agents` motion checks, for simulated raters

A photo's true pose (22, 3) may lie beside it (`p0_front.npy`): the simulated raters measure the
motion against it. A bad file is an `InputFileError` naming the file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ikmo.motion_model.constraints import MAX_DURATION_S, MAX_SEED
from ikmo.motion_model.errors import InputFileError

from ..agents.cases import MotionExpect, Photo

BASELINE = "no_agents"
PIPELINE = "agents"
Pipeline = Literal["no_agents", "agents"]
_NAME = r"^[A-Za-z0-9_.-]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Condition(_Strict):
    """How the stimuli of one condition are made.

    pipeline: `no_agents` (the request text is the model's caption; no trajectory, no keyframes) or
    `agents` (the whole graph). Default: `no_agents` for the condition named so, else `agents`.
    provider: an `ikmo eval agents --provider` string (agents pipeline only); weights: a motion model
    folder; settings: further `AgentSettings` fields (`critique_rounds`, `guidance_scale`, ...).
    """

    name: str = Field(pattern=_NAME, max_length=64)
    pipeline: Pipeline | None = None
    provider: str | None = Field(default=None, min_length=1)
    weights: str | None = Field(default=None, min_length=1)
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _pipeline(self) -> Condition:
        if self.pipeline is None:
            self.pipeline = "no_agents" if self.name == BASELINE else "agents"
        if self.pipeline == "no_agents" and self.provider is not None:
            raise ValueError(f"condition {self.name!r}: a provider needs pipeline: agents (no_agents has no agents)")
        bad = {"seed", "preview", "provider", "model", "base_url", "weights"} & set(self.settings)
        if bad:
            raise ValueError(f"condition {self.name!r}: settings {', '.join(sorted(bad))} are set by the study "
                             "(use the condition's provider/weights fields; seeds come from the study seed)")
        return self


class Item(_Strict):
    """One request of the study: words, optional photos with times, a duration."""

    id: str = Field(pattern=_NAME, max_length=64)
    text: str = Field(min_length=1, max_length=4000)
    photos: list[Photo] = Field(default_factory=list, max_length=8)
    duration_s: float | None = Field(default=None, gt=0, le=MAX_DURATION_S)
    expect: MotionExpect | None = Field(default=None, description="motion checks of `eval.agents` (for the "
                                        "simulated raters' scoring)")


class Misfit(_Strict):
    item: str
    text: str = Field(min_length=1, description="what the misfit motion is made from (no agents)")


class Attention(_Strict):
    identical: str | None = Field(default=None, description="item whose agents video appears on both sides")
    misfit: Misfit | None = None


class Video(_Strict):
    width: int = Field(default=384, ge=64, le=1920)
    height: int = Field(default=288, ge=64, le=1080)

    @field_validator("width", "height")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"must be even (H.264), got {v}")
        return v


class Study(_Strict):
    """A whole study (see the module docstring). `source` is the file it came from (set by the loader)."""

    name: str = Field(pattern=_NAME, max_length=64)
    seed: int = Field(default=0, ge=0, le=MAX_SEED - 10_000)
    participants: int = Field(default=10, ge=1, le=10_000)
    duration_s: float = Field(default=6.0, gt=0, le=MAX_DURATION_S)
    conditions: list[Condition] = Field(min_length=2, max_length=6)
    attention: Attention = Field(default_factory=Attention)
    video: Video = Field(default_factory=Video)
    items: list[Item] = Field(min_length=1, max_length=200)
    source: str = ""

    @model_validator(mode="after")
    def _refs(self) -> Study:
        for what, names in (("condition", [c.name for c in self.conditions]), ("item", [i.id for i in self.items])):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{what} {', '.join(dup)} named twice")
        ids = {i.id for i in self.items}
        att = self.attention
        for field, ref in (("attention.identical", att.identical), ("attention.misfit.item",
                                                                     att.misfit.item if att.misfit else None)):
            if ref is not None and ref not in ids:
                raise ValueError(f"{field}: no item {ref!r} (items: {', '.join(sorted(ids))})")
        if (att.identical or att.misfit) and PIPELINE not in {c.name for c in self.conditions}:
            raise ValueError("attention checks show the 'agents' condition's video: add a condition named agents")
        return self

    def item(self, item_id: str) -> Item:
        return next(i for i in self.items if i.id == item_id)

    def duration(self, item: Item) -> float:
        return item.duration_s if item.duration_s is not None else self.duration_s

    def photo_path(self, photo: Photo) -> Path:
        return (Path(self.source).parent / photo.path).resolve()

    def truth_path(self, photo: Photo) -> Path:
        p = self.photo_path(photo)
        return (p.parent / photo.truth).resolve() if photo.truth else p.with_suffix(".npy")


def _where(loc: tuple[Any, ...], doc: dict[str, Any]) -> str:
    """A pydantic error location as the field a person finds in the file (`items[2] (id 'x').text`)."""
    parts: list[str] = []
    node: Any = doc
    for p in loc:
        if isinstance(p, int) and parts:
            parts[-1] += f"[{p}]"
            if isinstance(node, list) and p < len(node) and isinstance(node[p], dict):
                ident = node[p].get("id", node[p].get("name"))
                if ident is not None:
                    parts[-1] += f" ({ident!r})"
        else:
            parts.append(str(p))
        node = node[p] if isinstance(node, (dict, list)) and _has(node, p) else None
    return ".".join(parts) or "(study)"


def _has(node: dict[str, Any] | list[Any], key: Any) -> bool:
    return (isinstance(node, dict) and key in node) or (isinstance(node, list) and isinstance(key, int)
                                                         and key < len(node))


def load_study(path: str | Path, source: str | Path | None = None, check_photos: bool = True) -> Study:
    """The study of a YAML file, its photos checked. Raises InputFileError naming the file and field.

    source: the file its relative photo paths are relative to (default `path`; a built study's copy
    names the original's)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise InputFileError(f"{path}: not a readable YAML file: {str(e).splitlines()[0]}") from e
    if not isinstance(doc, dict):
        raise InputFileError(f"{path}: expected a mapping with name, conditions and items (see eval/studies/)")
    try:
        study = Study.model_validate({**doc, "source": str(Path(source or path).resolve())})
    except ValidationError as e:
        err = e.errors()[0]
        msg = re.sub(r"^Value error, ", "", err["msg"])
        raise InputFileError(f"{path}: {_where(err['loc'], doc)}: {msg}") from e
    for i, item in enumerate(study.items):
        for j, ph in enumerate(item.photos if check_photos else []):
            if not study.photo_path(ph).is_file():
                raise InputFileError(f"{path}: items[{i}] ({item.id!r}).photos[{j}].path: "
                                     f"{study.photo_path(ph)} does not exist")
    return study
