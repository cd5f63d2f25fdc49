"""`ikmo bench long`: motions longer than one model window — cost and seams against the 10 s case.

The case is the offline agents' plan of "walk forward for N seconds": the sentence "a person walks
forward.", one walk segment, a straight dense path at 1.2 m/s with the facing it implies, sampled
through `tools.generate.generate_motion` (windows, stage 1, foot lock, rig projection, every file
including the preview). Each length is one fresh call with the same model and seed; the 10 s case
(200 frames: already two windows) is the baseline measured in the same run, and each row gives
its ratio to it — time and memory should grow with the frame ratio (linearly), not faster.

Per length: wall seconds of the whole call and of the sampling alone (medians of `repeats` runs
taken round the lengths); peak memory — in a fresh spawned process per length, after loading the
model and a warm-up motion, the kernel's resident-set high-water mark is reset
(/proc/self/clear_refs) and read back after the call (VmHWM − VmRSS: the extra memory it takes;
in the benchmark's own process the allocator's caches of earlier calls would hide it); the seam velocity jump
(`motion_metrics.seam_velocity_jump`: the largest change of joint velocity around each window
hand-over against the same statistic inside the windows); foot skating (OmniControl's ratio); and
the text–motion evaluator's cosine similarity of the request's sentence to each window's frames
(mean and lowest over the windows: a long motion should read as walking in every window).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from ikmo.eval.bench_speed import _reset_peak_rss, _status_kib
from ikmo.eval.evaluator import Evaluator
from ikmo.motion_model.constraints import Line, MotionDescription, MotionSpec, Segment, TrajectoryPlan
from ikmo.motion_model.motion_metrics import foot_skating_ratio, seam_velocity_jump
from ikmo.motion_model.representation.features import joints_to_features
from ikmo.motion_model.sampling import MotionModel, load_model
from ikmo.tools.generate import generate_motion
from ikmo.tools.toolbox import ToolSettings
from ikmo.tools.trajectory import densify

log = logging.getLogger(__name__)

WALK_TEXT = "a person walks forward."
WALK_SPEED_M_S = 1.2  # the offline planner's walking speed (agents/vocabulary.json)


@dataclass
class LongConfig:
    durations_s: tuple[float, ...] = (10.0, 30.0, 60.0)
    repeats: int = 3
    seed: int = 0
    num_threads: int = 2
    preview: bool = True
    measure_memory: bool = True
    reference_s: float | None = 9.8  # one window, the same request: skating and similarity without seams


@dataclass
class LongRow:
    duration_s: float
    n_frames: int
    n_windows: int
    seconds: float
    sample_s: float
    peak_extra_mb: float | None
    seam_jump: float
    inside_jump: float
    seam_ratio: float
    foot_skating: float
    traj_err_mean: float
    similarity_per_window: list[float] = field(default_factory=list)

    @property
    def similarity_mean(self) -> float:
        return statistics.fmean(self.similarity_per_window)


def walk_spec(duration_s: float, seed: int = 0) -> MotionSpec:
    """The offline agents' spec of "walk forward for `duration_s` seconds" (straight, 1.2 m/s)."""
    desc = MotionDescription(text=WALK_TEXT, duration_s=duration_s,
                             segments=[Segment(action="walk", start_s=0.0, end_s=duration_s, text="walks forward")])
    spec = MotionSpec.from_description(desc)
    plan = TrajectoryPlan(primitives=[Line(distance_m=WALK_SPEED_M_S * duration_s, duration_s=duration_s)])
    spec.trajectory = densify(plan, spec.n_frames)
    spec.options.seed = seed
    return spec


def window_similarities(ev: Evaluator, joints: np.ndarray, windows: list[tuple[int, int]], text: str) -> list[float]:
    """Cosine similarity of `text` to each window's frames of `joints` (T, 22, 3), each canonicalised."""
    feats = [joints_to_features(torch.as_tensor(joints[a:b], dtype=torch.float32)).numpy() for a, b in windows]
    m = ev.embed_motions(feats)
    t = ev.embed_texts([text])
    return [float(x) for x in (m @ t[0])]


def _formats(cfg: LongConfig) -> tuple[str, ...] | None:
    return None if cfg.preview else ("joints", "features", "bvh", "smpl")


def _peak_worker(weights: str | None, duration_s: float, cfg: LongConfig, out_dir: str, queue: Any) -> None:
    torch.set_num_threads(cfg.num_threads)
    model = load_model(weights)
    generate_motion(walk_spec(2.0, cfg.seed), Path(out_dir) / "warmup", model=model, formats=("joints",))
    if not _reset_peak_rss() or (rss := _status_kib("VmRSS")) is None:
        queue.put(None)  # no /proc (not Linux): no figure rather than a wrong one
        return
    generate_motion(walk_spec(duration_s, cfg.seed), Path(out_dir) / "peak", model=model, formats=_formats(cfg))
    queue.put(((_status_kib("VmHWM") or rss) - rss) / 1024)


def peak_extra_mb(weights: Path | None, duration_s: float, cfg: LongConfig, out_dir: Path) -> float | None:
    """Extra peak resident memory (MiB) of one `duration_s` request, in a fresh spawned process."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_peak_worker, args=(str(weights) if weights else None, duration_s, cfg, str(out_dir), q))
    p.start()
    try:
        return cast("float | None", q.get(timeout=1800))
    finally:
        p.join()


def run_case(model: MotionModel, ev: Evaluator, duration_s: float, out_dir: Path, cfg: LongConfig) -> LongRow:
    spec = walk_spec(duration_s, cfg.seed)
    t0 = time.perf_counter()
    res = generate_motion(spec, out_dir, model=model, settings=ToolSettings(), formats=_formats(cfg))
    seconds = time.perf_counter() - t0
    report = _read_json(Path(res.files["report"]))
    joints = np.load(res.files["joints"])
    windows = [(int(a), int(b)) for a, b in report["windows"]]
    m = res.metrics
    jump = seam_velocity_jump(joints, report["seams"])  # as report.json's metrics; also without seams
    sims = window_similarities(ev, joints, windows, spec.description.text)
    return LongRow(duration_s=duration_s, n_frames=spec.n_frames, n_windows=len(windows), seconds=seconds,
                   sample_s=float(report["timings_s"]["sample_s"]), peak_extra_mb=None,
                   seam_jump=jump["seam_mean"], inside_jump=jump["inside_mean"], seam_ratio=jump["ratio"],
                   foot_skating=foot_skating_ratio(joints), traj_err_mean=m["traj_err_mean"],
                   similarity_per_window=sims)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    return dict(json.loads(path.read_text()))


def run_long_benchmark(model: MotionModel, ev: Evaluator, cfg: LongConfig, out_dir: Path,
                       weights: Path | None = None) -> dict[str, Any]:
    """Every length of `cfg.durations_s` (the first is the baseline); a JSON-ready dict. `weights`:
    the folder `model` was loaded from (None: bundled), for the memory subprocesses."""
    torch.set_num_threads(cfg.num_threads)
    # Warm-up (text encoder, caches, first-call allocations): not any length's cost.
    generate_motion(walk_spec(2.0, cfg.seed), out_dir / "warmup", model=model, settings=ToolSettings(),
                    formats=("joints",))
    # Repeats go round the lengths (10, 30, 60, 10, 30, 60, ...) so that a busy machine slows every
    # length alike; the motions are the same each time (same seed), the times and peaks are medians.
    runs: dict[float, list[LongRow]] = {d: [] for d in cfg.durations_s}
    for r in range(cfg.repeats):
        for d in cfg.durations_s:
            log.info("long motion: %gs (repeat %d/%d)", d, r + 1, cfg.repeats)
            runs[d].append(run_case(model, ev, d, out_dir / f"{d:g}s", cfg))
    rows = []
    for rs in runs.values():
        row = asdict(rs[0])
        row.update(seconds=statistics.median(x.seconds for x in rs), sample_s=statistics.median(x.sample_s for x in rs),
                   seconds_runs=[x.seconds for x in rs], similarity_mean=rs[0].similarity_mean)
        row["peak_extra_mb"] = (peak_extra_mb(weights, rs[0].duration_s, cfg, out_dir / "memory")
                                if cfg.measure_memory else None)
        rows.append(row)
    out: dict[str, Any] = {"config": asdict(cfg), "rows": rows}
    if cfg.reference_s is not None:
        ref = run_case(model, ev, cfg.reference_s, out_dir / f"{cfg.reference_s:g}s", cfg)
        out["reference"] = {**asdict(ref), "similarity_mean": ref.similarity_mean}
    return out


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None or not b else f"{a / b:.2f}×"


def format_long(result: dict[str, Any]) -> str:
    """The table: one row per length, ratios to the first (baseline) length."""
    rows = result["rows"]
    base = rows[0]
    head = ("| length | frames (×) | windows | seconds (×) | sampling s (×) | peak extra MiB (×) | "
            "seam jump / inside, m/s (ratio) | foot skating | similarity per window: mean, min | traj err m |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        peak = ("–" if r["peak_extra_mb"] is None
                else f"{r['peak_extra_mb']:.0f} ({_ratio(r['peak_extra_mb'], base['peak_extra_mb'])})")
        sims = r["similarity_per_window"]
        lines.append(
            f"| {r['duration_s']:g} s | {r['n_frames']} ({_ratio(r['n_frames'], base['n_frames'])}) | "
            f"{r['n_windows']} | "
            f"{r['seconds']:.2f} ({_ratio(r['seconds'], base['seconds'])}) | "
            f"{r['sample_s']:.2f} ({_ratio(r['sample_s'], base['sample_s'])}) | {peak} | "
            f"{r['seam_jump']:.2f} / {r['inside_jump']:.2f} ({r['seam_ratio']:.2f}) | {r['foot_skating']:.3f} | "
            f"{statistics.fmean(sims):.3f}, {min(sims):.3f} | {r['traj_err_mean']:.3f} |")
    if (ref := result.get("reference")) is not None:
        lines.append(f"reference, one window ({ref['duration_s']:g} s, {ref['n_frames']} frames, same request): "
                     f"{ref['seconds']:.2f} s, foot skating {ref['foot_skating']:.3f}, similarity "
                     f"{ref['similarity_mean']:.3f}, velocity jump inside {ref['inside_jump']:.2f} m/s")
    return "\n".join(lines)
