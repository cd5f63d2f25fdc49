"""`ikmo bench compare`: two checkpoints' ControlNets on several seeds of test cases, with confidence
intervals. By default the bundled decoupled encoders (IKMo) against the joint-encoder ablation.

Each seed draws its own cases (`eval.cases.sample_cases`); on every seed both checkpoints run on the
same cases with the same noise, as the ControlNet alone (stage 1 off: what the encoders themselves
achieve), with stage 1 as gradient steps only (`gradient`: no exact projection, so where the
ControlNet leaves the motion decides where the steps end) and as full IKMo. Two kinds of interval, both 95 %:

- per-case figures (the pelvis's mean distance from its path, keyframe MPJPE, foot skating, the
  text-motion similarity, jerk, the share of floating frames) pool the cases of all seeds; A − B
  is paired by case, its interval a BCa bootstrap (`eval.stats`);
- set-level figures (FID, R@3) exist once per seed: Student's t interval over the seeds, of each
  checkpoint and of the paired difference. With three seeds the t interval is wide by design.

A difference whose interval excludes 0 is reported as such, unless it is below the metric's
resolution (`RESOLUTION`: 1 mm, 0.001 of skating or FID, 0.01 of R@3), which is called negligible;
one whose interval holds 0 is no verdict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ikmo.motion_model.model.training import Clip
from ikmo.motion_model.sampling import MotionModel

from .bench_control import BenchConfig, MethodRun, run_control_benchmark
from .cases import sample_cases
from .evaluator import Evaluator
from .stats import bootstrap_mean_ci, t_interval

log = logging.getLogger(__name__)

STAGES = ("alone", "gradient", "ikmo")
PER_CASE = (("traj_err", "path error (m)"), ("keyframe_mpjpe", "keyframe MPJPE (m)"), ("skating", "foot skating"),
            ("text_similarity", "text similarity"), ("jerk", "jerk (m/s³)"), ("floating", "floating share"))
PER_SEED = (("fid", "FID"), ("r_precision_top3", "R@3"))
# Below these a difference is not called even when its interval excludes 0: the projection's rows
# differ by 1e-8 m, which a bootstrap over 384 cases finds "significant".
RESOLUTION = {"traj_err": 1e-3, "keyframe_mpjpe": 1e-3, "skating": 1e-3, "text_similarity": 1e-3, "jerk": 1.0,
              "floating": 1e-3, "fid": 1e-3, "r_precision_top3": 0.01}


def stage_runs(name: str, model: MotionModel) -> list[MethodRun]:
    """The rows of one checkpoint, one per STAGES: its ControlNet alone (stage 1 off), with stage 1 as
    gradient steps only, and full IKMo."""
    return [MethodRun(f"{name}_alone", model, optimization=model.optimization.model_copy(update={"enabled": False})),
            MethodRun(f"{name}_gradient", model, optimization=model.optimization.gradient_only()),
            MethodRun(f"{name}_ikmo", model)]


def _paired(a: Sequence[float | None], b: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    keep = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    return np.asarray([x for x, _ in keep], dtype=np.float64), np.asarray([y for _, y in keep], dtype=np.float64)


def summarize(per_seed: Sequence[dict[str, Any]], names: tuple[str, str], seed: int = 0) -> list[dict[str, Any]]:
    """Rows (stage, metric, A and B means with intervals, A − B with its interval, n) from the results of
    `run_control_benchmark` on each seed (each with rows `<name>_<stage>`)."""
    a_name, b_name = names
    out: list[dict[str, Any]] = []
    for stage in STAGES:
        rows = [{r["method"]: r for r in res["results"]} for res in per_seed]
        ra = [r[f"{a_name}_{stage}"] for r in rows]
        rb = [r[f"{b_name}_{stage}"] for r in rows]
        for key, label in PER_CASE:
            if any(key not in r["per_case"] for r in ra + rb):
                continue  # a result file written before the figure was kept per case
            a, b = _paired([v for r in ra for v in r["per_case"][key]], [v for r in rb for v in r["per_case"][key]])
            out.append({"stage": stage, "metric": key, "label": label, "interval": "bootstrap over cases",
                        "n": len(a), "a": float(a.mean()) if len(a) else float("nan"),
                        "a_ci": bootstrap_mean_ci(a, seed), "b": float(b.mean()) if len(b) else float("nan"),
                        "b_ci": bootstrap_mean_ci(b, seed), "diff": float((a - b).mean()) if len(a) else float("nan"),
                        "diff_ci": bootstrap_mean_ci(a - b, seed)})
        for key, label in PER_SEED:
            a = np.asarray([r[key] for r in ra], dtype=np.float64)
            b = np.asarray([r[key] for r in rb], dtype=np.float64)
            am, alo, ahi = t_interval(a)
            bm, blo, bhi = t_interval(b)
            dm, dlo, dhi = t_interval(a - b)
            out.append({"stage": stage, "metric": key, "label": label, "interval": "t over seeds", "n": len(a),
                        "a": am, "a_ci": (alo, ahi), "b": bm, "b_ci": (blo, bhi), "diff": dm, "diff_ci": (dlo, dhi)})
    for row in out:
        d_lo, d_hi = row["diff_ci"]
        if not (d_hi < 0 or d_lo > 0):
            row["verdict"] = "no difference shown"
        elif abs(row["diff"]) < RESOLUTION[row["metric"]]:
            row["verdict"] = f"negligible (< {RESOLUTION[row['metric']]:g})"
        else:
            row["verdict"] = f"{a_name} lower" if d_hi < 0 else f"{b_name} lower"
    return out


def same_base(model_a: MotionModel, model_b: MotionModel) -> bool:
    """Whether two checkpoints share their base denoiser exactly (the same parameters): a comparison of
    their ControlNets is only that when they do; otherwise it also compares two bases."""
    sa, sb = model_a.net.base.state_dict(), model_b.net.base.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k]) for k in sa)


def run_compare(model_a: MotionModel, model_b: MotionModel, clips: Sequence[Clip], evaluator: Evaluator,
                cfg: BenchConfig, seeds: Sequence[int], names: tuple[str, str] = ("decoupled", "joint"),
                case_heading: bool = True, on_progress: Callable[[str, int, int], None] | None = None,
                ) -> dict[str, Any]:
    """Both checkpoints on `cfg.n_cases` cases of each seed; the per-seed results and `summarize`'s rows."""
    if len(seeds) < 2:
        log.warning("one seed of cases: the set-level figures (FID, R@3) get no interval")
    shared = same_base(model_a, model_b)
    if not shared:
        log.warning("%s and %s have different base denoisers: the comparison is of two bases as well as two "
                    "ControlNets (graft one ControlNet onto the other's base to compare the encoders alone)", *names)
    per_seed = []
    for s in seeds:
        cases = sample_cases(clips, cfg.n_cases, seed=s, heading=case_heading)
        runs = stage_runs(names[0], model_a) + stage_runs(names[1], model_b)
        per_seed.append(run_control_benchmark(runs, cases, evaluator, replace(cfg, seed=s, notes=[]),
                                              on_progress=on_progress))
    return {"benchmark": "compare", "names": list(names), "seeds": list(seeds), "n_cases": cfg.n_cases,
            "same_base": shared, "summary": summarize(per_seed, names), "per_seed": per_seed}


def format_compare(summary: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    """A markdown table of `summarize`'s rows: means [95 % interval]."""
    def num(v: float) -> str:  # sub-millimetre differences (the projection's rows) stay visible
        return f"{v:.3f}" if v == 0 or abs(v) >= 1e-3 or v != v else f"{v:.1e}"

    def ci(m: float, lohi: Sequence[float]) -> str:
        return f"{num(m)} [{num(lohi[0])}, {num(lohi[1])}]"

    head = f"| stage | metric | {names[0]} | {names[1]} | {names[0]} − {names[1]} | n | interval | verdict |"
    lines = [head, "|" + "---|" * 8]
    for r in summary:
        lines.append(f"| {r['stage']} | {r['label']} | {ci(r['a'], r['a_ci'])} | {ci(r['b'], r['b_ci'])} | "
                     f"{ci(r['diff'], r['diff_ci'])} | {r['n']} | {r['interval']} | {r['verdict']} |")
    return "\n".join(lines)
