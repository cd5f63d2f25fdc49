"""`ikmo study build STUDY.yaml --out DIR`: every item × condition motion (and the attention
checks' misfit motion), each rendered as a video of the same camera and length, and a manifest
that says exactly how each stimulus was made.

DIR after a build::

    study.yaml            the study file as given (the served study reads it from here)
    photos/               the items' photos, as the participants see them
    stimuli/<item>__<condition>/
        run/              the run's own files (joints.npy, features.npy, spec.json, config.json, report.json, ...)
        video.mp4         the stimulus: the skeleton on the floor grid, fixed camera, the item's length
        stimulus.json     its manifest record, written last: a stimulus with one is finished
    manifest.json         every stimulus record, the study, the build's versions

Resumable: a stimulus whose `stimulus.json` records the same recipe (condition, seed, duration,
text, photos, video size) is kept; a rerun makes only the others. Seeds: study seed + the item's
index, the same for every condition of an item, so conditions differ only by what they are.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from ikmo.motion_model.constraints import MotionResult, duration_to_frames
from ikmo.motion_model.errors import ConfigError, IKMoError
from ikmo.motion_model.fileio import ensure_output_dir, write_json

from ..agents.runner import ProviderConfig, parse_provider_arg
from .definition import Condition, Item, Study
from .design import MISFIT, stimulus_id

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STIMULUS = "stimulus.json"
STUDY_COPY = "study.yaml"
VIDEO = "video.mp4"
# The files every stimulus run writes (the preview is the study's own video instead).
RUN_FORMATS = ("joints", "features", "bvh", "smpl")


@dataclass
class Stimulus:
    """What one stimulus is made from. `condition` is the study's condition (or the misfit's own)."""

    id: str
    item: Item
    condition: Condition
    text: str
    seed: int
    duration_s: float
    photos: list[dict[str, Any]] = field(default_factory=list)

    def recipe(self, study: Study) -> dict[str, Any]:
        """Everything that decides the stimulus: equal recipes make equal files."""
        return {"condition": self.condition.model_dump(mode="json"), "text": self.text, "seed": self.seed,
                "duration_s": self.duration_s, "photos": self.photos, "video": study.video.model_dump()}


def stimuli(study: Study) -> list[Stimulus]:
    """Every stimulus of the study: item × condition, then the misfit check's motion."""
    out = []
    for k, item in enumerate(study.items):
        photos = [{"path": str(study.photo_path(p)), "time_s": p.time_s, "sha256": _sha256(study.photo_path(p))}
                  for p in item.photos]
        for cond in study.conditions:
            out.append(Stimulus(stimulus_id(item.id, cond.name), item, cond, item.text, study.seed + k,
                                study.duration(item), photos if cond.pipeline == "agents" else []))
    mis = study.attention.misfit
    if mis is not None:
        item = study.item(mis.item)
        k = study.items.index(item)
        out.append(Stimulus(MISFIT, item, Condition(name=MISFIT, pipeline="no_agents"), mis.text,
                            study.seed + k, study.duration(item)))
    return out


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def condition_settings(cond: Condition, seed: int, provider: ProviderConfig | None) -> Any:
    """The `AgentSettings` a condition's runs use (ConfigError naming the condition and field)."""
    from ikmo.agents.settings import AgentSettings

    kw: dict[str, Any] = dict(provider.settings()) if provider is not None else {}
    if cond.provider is not None:
        # a provider that fails would silently become the offline agent: a comparison of providers
        # must not (a condition may still allow it with settings: {fallback_offline: true})
        kw["fallback_offline"] = False
    try:
        return AgentSettings(**{**kw, **cond.settings}, seed=seed, preview=False,
                             weights=Path(cond.weights) if cond.weights else None)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"condition {cond.name!r}: settings.{loc}: {err['msg']}") from e


class _Models:
    """The motion models of a build, loaded once per weights folder."""

    def __init__(self) -> None:
        self._models: dict[str | None, Any] = {}

    def get(self, weights: str | None) -> Any:
        if weights not in self._models:
            from ikmo.motion_model.sampling import load_model

            self._models[weights] = load_model(Path(weights) if weights else None, "cpu")
        return self._models[weights]


def _make_motion(s: Stimulus, run_dir: Path, settings: Any, model: Any) -> MotionResult:
    """Generate the stimulus motion into run_dir: the graph (`agents`) or the text alone as the caption."""
    from ikmo.tools.local import LocalToolbox

    toolbox = LocalToolbox(settings, model=model)
    if s.condition.pipeline == "no_agents":
        from ikmo.motion_model.constraints import GenerationOptions, MotionDescription, MotionSpec

        spec = MotionSpec.from_description(MotionDescription(text=s.text, duration_s=s.duration_s),
                                           options=GenerationOptions(seed=s.seed))
        return toolbox.generate_motion(spec, run_dir, formats=RUN_FORMATS)
    from ikmo.agents.context import Context
    from ikmo.agents.run import raise_if_failed, run_request
    from ikmo.agents.state import ImageRef, MotionRequest

    req = MotionRequest(text=s.text, images=[ImageRef(path=p["path"], time_s=p["time_s"]) for p in s.photos],
                        duration_s=s.duration_s, seed=s.seed, out_dir=str(run_dir))
    final = run_request(req, Context(settings=settings, toolbox=toolbox))
    return raise_if_failed(final)


def fixed_length(joints: np.ndarray, n_frames: int) -> np.ndarray:
    """joints (T, 22, 3) → (n_frames, 22, 3): cut, or held on the last pose, so every video of an
    item lasts the same."""
    if len(joints) >= n_frames:
        return joints[:n_frames]
    return np.concatenate([joints, np.repeat(joints[-1:], n_frames - len(joints), axis=0)])


def render_video(joints: np.ndarray, path: Path, study: Study, n_frames: int) -> Path:
    """The stimulus video: the project's preview renderer, no overlay (no target path, no keyframe
    ghosts: they would tell the conditions apart), the same camera for all, `n_frames` frames."""
    from ikmo.tools.preview import PreviewOptions, write_preview

    opt = PreviewOptions(width=study.video.width, height=study.video.height)
    return write_preview(path, fixed_length(joints, n_frames), options=opt)


def _rel(path: str | Path, root: Path) -> str:
    return str(Path(path).resolve().relative_to(root.resolve()))


def _record(s: Stimulus, result: MotionResult, study: Study, out: Path, seconds: float, settings: Any
            ) -> dict[str, Any]:
    run_dir = out / "stimuli" / s.id / "run"
    files = {k: _rel(v, out) for k, v in result.files.items() if Path(v).is_file() and
             Path(v).resolve().is_relative_to(out.resolve())}
    files["video"] = _rel(out / "stimuli" / s.id / VIDEO, out)
    return {"id": s.id, "item": s.item.id, "condition": s.condition.name, "pipeline": s.condition.pipeline,
            "text": s.text, "caption": result.spec.description.text, "seed": s.seed, "duration_s": s.duration_s,
            "n_frames": duration_to_frames(s.duration_s),
            "motion_frames": int(np.load(run_dir / "joints.npy").shape[0]),
            "keyframes": len(result.spec.keyframes), "trajectory": result.spec.trajectory is not None,
            "files": files,
            "metrics": {k: float(v) for k, v in result.metrics.items() if np.isfinite(v)},  # NaN: not measured
            "recipe": s.recipe(study), "settings": settings.dump(), "seconds": round(seconds, 2),
            "notes": list(result.notes)}


def _finished(path: Path, recipe: dict[str, Any]) -> dict[str, Any] | None:
    import json

    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return rec if rec.get("recipe") == recipe and (path.parent / VIDEO).is_file() else None


def _copy_inputs(study: Study, out: Path) -> dict[str, list[str]]:
    """The study file and the items' photos into DIR (what `serve` shows); returns item → photo paths."""
    shutil.copyfile(study.source, out / STUDY_COPY)
    photos: dict[str, list[str]] = {}
    for item in study.items:
        photos[item.id] = []
        for j, ph in enumerate(item.photos):
            src = study.photo_path(ph)
            dst = out / "photos" / f"{item.id}_{j}{src.suffix.lower()}"
            dst.parent.mkdir(exist_ok=True)
            shutil.copyfile(src, dst)
            photos[item.id].append(_rel(dst, out))
    return photos


def _providers(study: Study, todo: list[Stimulus], stack: ExitStack) -> dict[str, ProviderConfig | None]:
    """Each condition's provider, a local one (smollm2, gemma3) started on 127.0.0.1 when a stimulus
    still to make needs it."""
    from ikmo.agents.local_llm import LlamaServer

    out: dict[str, ProviderConfig | None] = {}
    needed = {s.condition.name for s in todo}
    for cond in study.conditions:
        prov = parse_provider_arg(cond.provider) if cond.provider else None
        if prov is not None and prov.local is not None and prov.base_url is None and cond.name in needed:
            prov.base_url = stack.enter_context(LlamaServer(prov.local)).url
        out[cond.name] = prov
    out[MISFIT] = None
    return out


def build_study(study: Study, out: Path, on_progress: Callable[[int, int, str], None] | None = None
                ) -> dict[str, Any]:
    """Make every stimulus not yet finished in `out`, write the manifest, return it.

    on_progress(done, total, stimulus id) after each stimulus. Raises an IKMoError naming the item and
    condition when a stimulus cannot be made; the finished ones stay (a rerun resumes)."""
    out = ensure_output_dir(out)
    all_stimuli = stimuli(study)
    for s in all_stimuli:  # every condition's settings checked before any work
        condition_settings(s.condition, s.seed, None)
    out.mkdir(parents=True, exist_ok=True)
    photos = _copy_inputs(study, out)
    records: dict[str, dict[str, Any]] = {}
    todo = []
    for s in all_stimuli:
        rec = _finished(out / "stimuli" / s.id / STIMULUS, s.recipe(study))
        if rec is not None:
            records[s.id] = rec
        else:
            todo.append(s)
    log.info("%d stimuli: %d finished earlier, %d to make", len(all_stimuli), len(records), len(todo))
    if on_progress is not None:
        on_progress(len(records), len(all_stimuli), "")
    models = _Models()
    with ExitStack() as stack:
        provs = _providers(study, todo, stack)
        for s in todo:
            sdir = out / "stimuli" / s.id
            if sdir.exists():  # an unfinished attempt (or an old recipe): made anew
                shutil.rmtree(sdir)
            sdir.mkdir(parents=True)
            settings = condition_settings(s.condition, s.seed, provs[s.condition.name])
            t0 = time.perf_counter()
            try:
                result = _make_motion(s, sdir / "run", settings, models.get(s.condition.weights))
            except IKMoError as e:
                raise type(e)(f"stimulus {s.id} (item {s.item.id!r}, condition {s.condition.name!r}): "
                              f"{str(e).splitlines()[0]}") from e
            joints = np.load(result.files["joints"])
            render_video(joints, sdir / VIDEO, study, duration_to_frames(s.duration_s))
            rec = _record(s, result, study, out, time.perf_counter() - t0, settings)
            write_json(sdir / STIMULUS, rec)
            records[s.id] = rec
            if on_progress is not None:
                on_progress(len(records), len(all_stimuli), s.id)
    manifest = {"study": study.model_dump(mode="json", exclude={"source"}), "study_file": STUDY_COPY,
                "source": study.source, "photos": photos, "versions": versions(),
                "stimuli": [records[s.id] for s in all_stimuli]}
    write_json(out / MANIFEST, manifest)
    return manifest


def versions() -> dict[str, str | None]:
    """The versions a build ran with (package, commit when in a checkout, torch)."""
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    def pkg(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"ikmo": pkg("ikmo"), "torch": pkg("torch"), "commit": commit}


def load_manifest(out: Path) -> dict[str, Any]:
    """The manifest of a built study folder (InputFileError saying to build it first)."""
    import json

    from ikmo.motion_model.errors import InputFileError

    path = Path(out) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputFileError(f"{out}: no {MANIFEST}; build the study first: ikmo study build STUDY.yaml "
                             f"--out {out}") from None
    except (OSError, ValueError) as e:
        raise InputFileError(f"{path}: unreadable ({e}); rebuild with ikmo study build STUDY.yaml --out {out}"
                             ) from e
