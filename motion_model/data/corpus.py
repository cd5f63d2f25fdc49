"""Build a HumanML3D-layout training corpus from motion-capture BVH files.

Sources (found by `discover_sources` under a raw directory, archives unpacked by `unpack_archives`):
Bandai Namco Research Motion 1 and 2 (content × style labels), the CMU subset (trial
descriptions, true frame rates from ``cmu_trials_framerate.csv``), ReActIdle (idle motions), and
any other BVH with a sidecar ``<name>.txt`` of captions (one per line), mapped by joint names.

Per clip (`process_clip`, run in worker processes): read → rig map → metres, y up → 20 fps →
windows → (and mirrored) canonicalise (uniform skeleton, floor, origin, facing +Z) → features.

Windows: a clip of more than ``MAX_FRAMES + 1`` positions (196 feature rows, 9.8 s) is cut into
windows of ``MAX_FRAMES + 1`` positions every ``WINDOW_STRIDE`` = 98 frames (4.9 s); the last
window is aligned to the clip's end so no tail is lost. Clips shorter than ``MIN_FRAMES`` = 21
positions (1 s) are rejected (HumanML3D's own minimum is 40 rows; filter in the loader for that).

Output (HumanML3D layout): ``new_joint_vecs/<id>.npy`` (N, 263) float32, ``new_joints/<id>.npy``
(N, 22, 3) float32 recovered from the features (as HumanML3D does), ``texts/<id>.txt``,
``Mean.npy``/``Std.npy`` from the train split, ``train.txt``/``val.txt``/``test.txt``/``all.txt``,
``card.md``/``card.json``. Ids: ``<source>_<file stem>_w<k>``, mirrored ``M<id>`` (HumanML3D's
``M`` prefix). The split is by source clip (sha256 of the clip id → 80/10/10), so windows and
mirrors of a clip stay together. The build writes into ``<out>.partial`` and renames it onto
``<out>`` only when complete: an interrupted build never leaves a half-built corpus.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import tarfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from ikmo.motion_model.data.captions import bandai_captions, cmu_captions, idle_captions, mirror_caption, text_line
from ikmo.motion_model.errors import IKMoError, InputFileError, MotionDataError, RigMappingError
from ikmo.motion_model.fileio import save_npy, write_json, write_text
from ikmo.motion_model.representation.skeleton import FPS, HUMANML3D_22, MAX_FRAMES

log = logging.getLogger(__name__)

WINDOW_FRAMES = MAX_FRAMES + 1  # positions per window: features have one row fewer
WINDOW_STRIDE = 98
MIN_FRAMES = 21  # positions: 20 feature rows = 1 s (HumanML3D drops < 40 rows; ours has many 1-2 s clips)
# CMU's cgspeed BVH files start in a T-pose and blend into the motion over ~8 frames at 120 fps.
CMU_TRIM_S = 0.1
SPLITS = ("train", "val", "test")
LICENCES = {
    "bandai": "CC BY-NC 4.0 (Bandai Namco Research Inc.; non-commercial)",
    "cmu": "CMU Graphics Lab Motion Capture Database: free for research and commercial use",
    "reactidle": "MIT (ReActIdle, Atxa Landa et al. 2025)",
    "user": "as given by the user",
}


@dataclass(frozen=True)
class ClipJob:
    """One source BVH file to import.

    Attributes:
        source: "bandai" | "cmu" | "reactidle" | "user".
        path: the BVH file.
        clip_id: unique id of the source clip (also the split key).
        label: the clip's main label (Bandai content, CMU description, ReActIdle kind).
        labels: all labels, e.g. {"content": "walk", "style": "tired"}.
        rig: explicit rig name, or None to map by joint names.
        src_fps: the true capture rate when the header is wrong, else None.
        src_fps_if_header: `src_fps` applies only when the header claims this rate (see rigs.bvh_to_joints).
        trim_start_s: seconds dropped at the start of the clip.
        captions: given captions (user clips); None to write them from the labels.
        problem: non-empty when the clip must be skipped (reported as its rejection reason).
    """

    source: str
    path: str
    clip_id: str
    label: str
    labels: dict[str, str] = field(default_factory=dict)
    rig: str | None = None
    src_fps: float | None = None
    captions: tuple[str, ...] | None = None
    src_fps_if_header: float | None = None
    trim_start_s: float = 0.0
    problem: str = ""  # why the clip cannot be built (found at discovery, e.g. an unreadable caption file)


@dataclass
class ClipResult:
    """What `process_clip` made of a job: written ids with their feature rows, or the reason it failed."""

    job: ClipJob
    split: str = ""
    items: list[tuple[str, int]] = field(default_factory=list)  # (id, feature rows)
    seconds: float = 0.0  # duration of the source clip at 20 fps
    error: str = ""
    info: dict[str, object] = field(default_factory=dict)
    rig: str = ""  # the rig's label (`rigs.rig_label`), also when its mapping failed
    rig_missing: tuple[str, ...] = ()  # target joints the rig lacks (mapping failures only)


# ----------------------------------------------------------------------------- discovery


def unpack_archives(archives: Sequence[Path], dest: Path) -> list[Path]:
    """Unpack .tar(.xz|.gz|.bz2) archives into ``dest/<archive name>/`` (skipped when already done).

    Unpacks into a temporary folder renamed when complete, so a killed run never leaves half an
    archive that looks unpacked. Returns the folders.
    """
    out = []
    for a in archives:
        name = a.name.split(".tar")[0]
        target = dest / name
        if not (target / ".unpacked").is_file():
            tmp = dest / f".{name}.partial"
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            log.info("unpacking %s into %s", a, target)
            try:
                with tarfile.open(a) as tf:
                    tf.extractall(tmp, filter="data")
            except (tarfile.TarError, OSError, EOFError) as e:
                shutil.rmtree(tmp, ignore_errors=True)
                raise InputFileError(f"cannot unpack {a}: {e}. Is it a complete .tar.xz archive?") from e
            (tmp / ".unpacked").write_text(str(a))
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        out.append(target)
    return out


def _bandai_jobs(root: Path) -> list[ClipJob]:
    jobs = []
    for ds in sorted(p for p in root.rglob("Bandai-Namco-Research-Motiondataset-*") if (p / "cfg").is_dir()):
        prefix = ds.name.rsplit("-", 1)[-1]  # "1" or "2"
        contents = [s.split("_", 1)[1] for s in (ds / "cfg/content_label.txt").read_text().split()]
        styles = [s.split("_", 1)[1] for s in (ds / "cfg/style_label.txt").read_text().split()]
        for bvh in sorted((ds / "data").glob("*.bvh")):
            meta = bvh.with_suffix(".json")
            try:
                lab = json.loads(meta.read_text())
                content, style = contents[lab["content"]], styles[lab["style"]]
            except (OSError, ValueError, KeyError, IndexError):
                # The file name also carries the labels: dataset-N_{content}_{style}_{id}.
                parts = bvh.stem.split("_")
                content, style = parts[1], parts[2]
            jobs.append(ClipJob("bandai", str(bvh), f"bandai{prefix}_{bvh.stem.split('_', 1)[1]}", content,
                                {"content": content, "style": style, "dataset": prefix}, rig="bandai"))
    return jobs


def _cmu_jobs(root: Path) -> list[ClipJob]:
    jobs = []
    for labels_csv in sorted(root.rglob("cmu_motion_labels.csv")):
        d = labels_csv.parent
        with open(labels_csv, newline="") as f:
            desc = {r["motion_id"]: (r.get("long_label") or r.get("short_label") or "").strip()
                    for r in csv.DictReader(f) if r.get("motion_id")}
        rates: dict[str, float] = {}
        rate_csv = d / "cmu_trials_framerate.csv"
        if rate_csv.is_file():
            with open(rate_csv, newline="") as f:
                for r in csv.DictReader(f):
                    try:
                        rates[f"{int(r['Subject']):02d}_{int(r['Trial #']):02d}"] = float(r["framerate"])
                    except (KeyError, ValueError):
                        continue
        for bvh in sorted(d.rglob("*.bvh")):
            trial = bvh.stem
            jobs.append(ClipJob("cmu", str(bvh), f"cmu_{trial}", desc.get(trial, ""),
                                {"description": desc.get(trial, "")}, src_fps=rates.get(trial),
                                src_fps_if_header=120.0, trim_start_s=CMU_TRIM_S))
    return jobs


def _reactidle_jobs(root: Path) -> list[ClipJob]:
    jobs = []
    for kind in ("acted", "genuine"):
        for d in sorted(p for p in root.rglob(kind) if p.is_dir() and (p.parent / "LICENSE.txt").is_file()):
            for bvh in sorted(d.glob("*.bvh")):
                jobs.append(ClipJob("reactidle", str(bvh), f"reactidle_{bvh.stem}", kind, {"kind": kind},
                                    rig="reactidle"))
    return jobs


def _read_captions(side: Path) -> tuple[tuple[str, ...], str]:
    """A user clip's caption sidecar → (captions, "") or ((), why it cannot be read): one bad file
    skips its clip, never the build."""
    if not side.is_file():
        return (), ""
    try:
        text = side.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        return (), (f"{side}: the caption file is not UTF-8 text (byte {e.start}); save it as UTF-8 to include "
                    "this clip")
    except OSError as e:
        return (), f"{side}: cannot read the caption file: {e.strerror or e}"
    return tuple(c.strip() for c in text.splitlines() if c.strip()), ""


def discover_sources(root: Path) -> list[ClipJob]:
    """All clip jobs under `root`: the three known datasets, plus BVH files with a caption sidecar."""
    jobs = _bandai_jobs(root) + _cmu_jobs(root) + _reactidle_jobs(root)
    known = {j.path for j in jobs}
    for bvh in sorted(root.rglob("*.bvh")):
        if str(bvh) in known:
            continue
        side = bvh.with_suffix(".txt")
        caps, problem = _read_captions(side)
        stem = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in bvh.stem)
        jobs.append(ClipJob("user", str(bvh), f"user_{stem}", "user", {}, captions=caps, problem=problem))
    ids = Counter(j.clip_id for j in jobs)
    dup = [i for i, n in ids.items() if n > 1]
    if dup:
        raise InputFileError(f"clip ids are not unique under {root}: {dup[:5]}; give the files distinct names")
    return jobs


# ----------------------------------------------------------------------------- per-clip processing


def split_of(clip_id: str) -> str:
    """Deterministic 80/10/10 split by source clip: sha256 of the id, modulo 100."""
    h = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "big") % 100
    return "train" if h < 80 else "val" if h < 90 else "test"


def window_starts(n_frames: int, window: int = WINDOW_FRAMES, stride: int = WINDOW_STRIDE) -> list[int]:
    """Start frames of the windows of a clip of `n_frames` positions (one window if it fits)."""
    if n_frames <= window:
        return [0]
    starts = list(range(0, n_frames - window + 1, stride))
    if starts[-1] != n_frames - window:
        starts.append(n_frames - window)
    return starts


def captions_for(job: ClipJob, key: str) -> list[str]:
    """The clip's captions (≥ 3 unless the user gave fewer)."""
    if job.captions is not None:
        if not job.captions:
            raise MotionDataError(f"{job.path}: no captions; write them into {Path(job.path).with_suffix('.txt')}, "
                                  "one per line")
        return list(job.captions)
    if job.source == "bandai":
        return bandai_captions(job.labels["content"], job.labels["style"], key)
    if job.source == "cmu":
        if not job.label:
            raise MotionDataError(f"{job.path}: trial {job.clip_id} has no description in cmu_motion_labels.csv")
        return cmu_captions(job.label, key)
    if job.source == "reactidle":
        return idle_captions(job.label, key)
    raise MotionDataError(f"{job.path}: no captions for source {job.source!r}")


def process_clip(job: ClipJob, out: Path) -> ClipResult:
    """Import one clip and write its windows and mirrors into `out`. Never raises: a failure comes
    back as ``ClipResult.error`` so one bad file does not stop the build."""
    from ikmo.motion_model.representation.features import canonicalize, features_to_joints, joints_to_features, mirror_joints
    from ikmo.motion_model.data.rigs import bvh_to_joints

    res = ClipResult(job=job, split=split_of(job.clip_id))
    try:
        if job.problem:
            raise InputFileError(job.problem)
        joints, info = bvh_to_joints(job.path, rig=job.rig, src_fps=job.src_fps, dst_fps=FPS,
                                     src_fps_if_header=job.src_fps_if_header, trim_start_s=job.trim_start_s)
        res.info = info
        res.rig = str(info.get("rig_label", ""))
        T = joints.shape[0]
        res.seconds = (T - 1) / FPS
        if T < MIN_FRAMES:
            raise MotionDataError(f"{job.path}: {T} frames at {FPS} fps ({res.seconds:.2f} s) is shorter than "
                                  f"the {MIN_FRAMES}-frame minimum")
        caps = captions_for(job, job.clip_id)
        starts = window_starts(T)
        # Windows of one clip share a length: canonicalise them as one batch.
        groups: dict[int, list[int]] = defaultdict(list)
        for s in starts:
            groups[min(WINDOW_FRAMES, T - s)].append(s)
        for length, ss in groups.items():
            batch = np.stack([joints[s:s + length] for s in ss])  # (W, L, 22, 3)
            for mirrored in (False, True):
                src = mirror_joints(batch, HUMANML3D_22) if mirrored else batch
                canon = canonicalize(src, HUMANML3D_22)
                # numpy_compatible gives ndarrays for ndarrays; its typing keeps the torch signature.
                feats = cast(np.ndarray, joints_to_features(canon, HUMANML3D_22, canonical=False)).astype(np.float32)
                rec = cast(np.ndarray, features_to_joints(feats, HUMANML3D_22)).astype(np.float32)  # type: ignore[arg-type]
                if not (np.isfinite(feats).all() and np.isfinite(rec).all()):
                    raise MotionDataError(f"{job.path}: features came out non-finite (degenerate pose?)")
                lines = [text_line(mirror_caption(c) if mirrored else c) for c in caps]
                for k, s in enumerate(ss):
                    wid = f"{job.clip_id}_w{starts.index(s):02d}"
                    item = f"M{wid}" if mirrored else wid
                    save_npy(out / "new_joint_vecs" / f"{item}.npy", feats[k])
                    save_npy(out / "new_joints" / f"{item}.npy", rec[k])
                    write_text(out / "texts" / f"{item}.txt", "\n".join(lines) + "\n")
                    res.items.append((item, int(feats.shape[1])))
    except RigMappingError as e:
        res.error, res.rig, res.rig_missing = str(e), e.rig, e.missing or ("?",)
    except IKMoError as e:
        res.error = str(e)
    except Exception as e:  # a build must report every bad clip and go on, whatever went wrong
        log.debug("unexpected failure on %s", job.path, exc_info=True)
        res.error = f"{job.path}: unexpected {type(e).__name__}: {e}"
    return res


def _worker_init() -> None:
    import torch

    # Each worker is one process per core: intra-op threads would only oversubscribe the cores.
    torch.set_num_threads(1)


def _run(args: tuple[ClipJob, Path]) -> ClipResult:
    return process_clip(*args)


# ----------------------------------------------------------------------------- the build


def build_corpus(
    jobs: Sequence[ClipJob],
    out: Path,
    workers: int = 2,
    on_clip: Callable[[ClipResult], None] | None = None,
) -> dict[str, Any]:
    """Process `jobs` into a HumanML3D-layout corpus at `out` (replacing a previous corpus there).

    Args:
        jobs: from `discover_sources`.
        out: the corpus folder; built in ``<out>.partial`` and renamed when complete.
        workers: processes (1 runs in this process).
        on_clip: called after each clip (progress bars).
    Returns:
        The card (also written as card.json / card.md).
    Raises:
        InputFileError: `out` exists and is not a corpus; MotionDataError: no clip survived.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "card.json").is_file():
        raise InputFileError(f"{out} exists and is not a corpus built by ikmo (no card.json); "
                             "choose another --out or empty it")
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    for sub in ("new_joint_vecs", "new_joints", "texts"):
        (tmp / sub).mkdir(parents=True)

    t0 = time.perf_counter()
    results: list[ClipResult] = []
    tasks = [(j, tmp) for j in jobs]
    if workers <= 1:
        it: Iterable[ClipResult] = map(_run, tasks)
        pool = None
    else:
        import multiprocessing as mp

        # Start big clips first so a long one does not finish alone at the end.
        tasks.sort(key=lambda t: -_size(t[0].path))
        pool = mp.get_context("spawn").Pool(workers, initializer=_worker_init)
        it = pool.imap_unordered(_run, tasks, chunksize=4)
    try:
        for r in it:
            results.append(r)
            if r.error and not r.rig_missing:  # rig failures: one line per rig, after the loop
                log.warning("skipped %s", r.error)
            if on_clip:
                on_clip(r)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    elapsed_process = time.perf_counter() - t0
    _warn_rigs(results)

    results.sort(key=lambda r: r.job.clip_id)
    good = [r for r in results if not r.error]
    if not good:
        shutil.rmtree(tmp)
        raise MotionDataError(f"no clip could be imported ({len(results)} tried); see the warnings above")
    split_ids: dict[str, list[str]] = {s: [] for s in SPLITS}
    for r in good:
        split_ids[r.split].extend(i for i, _ in r.items)
    for s in SPLITS:
        write_text(tmp / f"{s}.txt", "".join(f"{i}\n" for i in split_ids[s]))
    write_text(tmp / "all.txt", "".join(f"{i}\n" for s in SPLITS for i in split_ids[s]))
    _write_stats(tmp, split_ids["train"] or [i for s in SPLITS for i in split_ids[s]])

    card = _card(results, elapsed_process, workers)
    write_json(tmp / "card.json", card)
    write_text(tmp / "card.md", card_markdown(card))
    # Swap by renames so the corpus path is missing only between two renames, not a long rmtree.
    old = out.with_name(out.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    log.info("corpus written to %s: %d clips, %d items, %.1f h in %.1f s (%d rejected)", out,
             card["clips"], card["items"], card["hours_source"], card["build_seconds"], len(card["rejected"]))
    return card


def _warn_rigs(results: Sequence[ClipResult]) -> None:
    """One warning per rig whose mapping failed (not one per clip)."""
    failed: dict[str, list[ClipResult]] = defaultdict(list)
    for r in results:
        if r.rig_missing:
            failed[r.rig].append(r)
    for rig, rs in failed.items():
        missing = ", ".join(rs[0].rig_missing)
        log.warning("%d clip(s) on rig %s skipped: no joint for %s (see `ikmo data inspect %s`)",
                    len(rs), rig, missing, rs[0].job.path)


def rig_summary(results: Sequence[ClipResult]) -> list[dict[str, Any]]:
    """Per rig: clips imported and skipped, the mapping used, and why clips were skipped."""
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        row = rows.setdefault(r.rig or "unreadable file", {"rig": r.rig or "unreadable file", "imported": 0,
                                                          "skipped": 0, "mapping": "", "guessed": [], "reason": ""})
        if r.error:
            row["skipped"] += 1
            if r.rig_missing:
                row["reason"] = "no joint for " + ", ".join(r.rig_missing)
        else:
            row["imported"] += 1
            row["mapping"] = f"{r.info.get('rig')}, {r.info.get('unit')}"
            row["guessed"] = list(r.info.get("guessed") or [])  # type: ignore[call-overload]
    return sorted(rows.values(), key=lambda x: -(x["imported"] + x["skipped"]))


def rig_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The rig summary as Markdown table lines."""
    out = ["| rig | imported | skipped | mapping | guessed joints | why skipped |", "|---|---|---|---|---|---|"]
    for x in rows:
        out.append(f"| {x['rig']} | {x['imported']} | {x['skipped']} | {x['mapping']} | "
                   f"{', '.join(x['guessed']) or '-'} | {x['reason'] or '-'} |")
    return out


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _write_stats(root: Path, ids: Sequence[str]) -> None:
    from ikmo.motion_model.representation.features import Normalizer

    feats = np.concatenate([np.load(root / "new_joint_vecs" / f"{i}.npy") for i in ids], axis=0)
    Normalizer.fit(feats, HUMANML3D_22).save(root)


def _card(results: Sequence[ClipResult], elapsed: float, workers: int) -> dict[str, Any]:
    good = [r for r in results if not r.error]
    per_split: dict[str, dict[str, float]] = {s: {"clips": 0, "items": 0, "frames": 0, "hours": 0.0} for s in SPLITS}
    per_source: dict[str, dict[str, float]] = defaultdict(lambda: {"clips": 0, "items": 0, "hours": 0.0})
    per_label: dict[str, dict[str, float]] = defaultdict(lambda: {"clips": 0, "hours": 0.0})
    per_style: dict[str, int] = Counter()
    for r in good:
        sp = per_split[r.split]
        sp["clips"] += 1
        sp["items"] += len(r.items)
        sp["frames"] += sum(n for _, n in r.items)
        sp["hours"] += r.seconds / 3600
        ps = per_source[r.job.source]
        ps["clips"] += 1
        ps["items"] += len(r.items)
        ps["hours"] += r.seconds / 3600
        pl = per_label[f"{r.job.source}:{r.job.label}"]
        pl["clips"] += 1
        pl["hours"] += r.seconds / 3600
        if "style" in r.job.labels:
            per_style[r.job.labels["style"]] += 1
    rnd = lambda d: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}  # noqa: E731
    return {
        "format": "HumanML3D layout (263-d features, 22 joints, 20 fps, metres, y up, faces +Z)",
        "clips": len(good),
        "items": sum(len(r.items) for r in good),
        "hours_source": round(sum(r.seconds for r in good) / 3600, 4),
        "hours_items": round(sum(n for r in good for _, n in r.items) / FPS / 3600, 4),
        "windows": {"frames": WINDOW_FRAMES, "stride": WINDOW_STRIDE, "min_frames": MIN_FRAMES},
        "split": {"rule": "sha256(source clip id) % 100: <80 train, <90 val, else test", **{
            s: rnd(v) for s, v in per_split.items()}},
        "per_source": {k: rnd(v) for k, v in sorted(per_source.items())},
        "per_label": {k: rnd(v) for k, v in sorted(per_label.items())},
        "per_style": dict(sorted(per_style.items())),
        "licences": {s: LICENCES[s] for s in sorted(per_source)},
        "rejected": [{"clip": r.job.clip_id, "path": r.job.path, "reason": r.error} for r in results if r.error],
        "build_seconds": round(elapsed, 1),
        "workers": workers,
        "example_captions": {r.job.clip_id: captions_for(r.job, r.job.clip_id)
                             for r in _examples(good)},
        "items_per_clip": {r.job.clip_id: [i for i, _ in r.items] for r in good},
        "rig_summary": rig_summary(results),
        "rigs": dict(Counter(f"{r.job.source}: rig {r.info.get('rig')}, {r.info.get('unit')}, "
                             f"{r.info.get('src_fps')} fps" for r in good)),
    }


def _examples(good: Sequence[ClipResult]) -> list[ClipResult]:
    seen: dict[str, ClipResult] = {}
    for r in good:
        seen.setdefault(r.job.source, r)
    return list(seen.values())


def card_markdown(card: dict) -> str:
    """The dataset card as Markdown (the same numbers as card.json)."""
    lines = [
        "# Motion corpus card", "",
        f"Format: {card['format']}.", "",
        f"- source clips: {card['clips']}, items (windows × mirror): {card['items']}",
        f"- hours: {card['hours_source']} h of source motion, {card['hours_items']} h in items "
        "(windows overlap; mirrors count twice)",
        f"- windows: {card['windows']['frames']} positions, stride {card['windows']['stride']}, "
        f"clips under {card['windows']['min_frames']} frames rejected",
        f"- build: {card['build_seconds']} s with {card['workers']} worker(s)", "",
        "## Splits", "", f"Rule: {card['split']['rule']}", "",
        "| split | clips | items | feature rows | hours (source) |", "|---|---|---|---|---|",
    ]
    for s in SPLITS:
        v = card["split"][s]
        lines.append(f"| {s} | {v['clips']} | {v['items']} | {v['frames']} | {v['hours']} |")
    lines += ["", "## Sources and licences", ""]
    lines += ["| source | clips | items | hours | licence |", "|---|---|---|---|---|"]
    for k, v in card["per_source"].items():
        lines.append(f"| {k} | {v['clips']} | {v['items']} | {v['hours']} | {card['licences'][k]} |")
    lines += ["", "## Labels", "", "| label | clips | hours |", "|---|---|---|"]
    lines += [f"| {k} | {v['clips']} | {v['hours']} |" for k, v in card["per_label"].items()]
    if card["per_style"]:
        lines += ["", "Bandai styles: " + ", ".join(f"{k} {v}" for k, v in card["per_style"].items())]
    lines += ["", "## Example captions", ""]
    for k, caps in card["example_captions"].items():
        lines += [f"- {k}: " + " | ".join(caps)]
    if card.get("rig_summary"):
        lines += ["", "## Rigs", "", *rig_table(card["rig_summary"])]
    lines += ["", f"## Rejected clips ({len(card['rejected'])})", ""]
    lines += [f"- {r['clip']}: {r['reason']}" for r in card["rejected"]] or ["none"]
    return "\n".join(lines) + "\n"


def read_card(path: Path) -> dict:
    """card.json of a corpus folder."""
    f = Path(path) / "card.json"
    if not f.is_file():
        raise InputFileError(f"{path} has no card.json: is it a corpus built by `ikmo data build`?")
    return json.loads(f.read_text())
