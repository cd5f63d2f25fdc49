"""`ikmo bench speed`: wall time and peak memory of one controlled motion, against OmniControl's schedule.

The case: one 196-frame motion with a dense pelvis trajectory and 2 keyframe poses, sampled on
the CPU with `num_threads` threads (2 = the target machine). "ours" is the model's own schedule
(its DDIM steps, CFG, and stage-1 optimization iterations). The baseline is the same model run
with OmniControl's published schedule: 1000 denoising steps, 10 guidance iterations per step and
500 in the last 10 steps (Xie et al., ICLR 2024, Sec. 4 / their `n_guide_steps`); the same
network, so the ratio isolates the schedule.

Running the baseline in full takes minutes on a CPU, so by default it is *estimated* from the
same run: a k-step sample without optimization gives the cost of a denoising step, a k-step
sample with 10 iterations per step adds the cost of a guidance iteration, and the baseline's
cost is 1000·step + (990·10 + 10·500)·iteration (plus the fixed per-call cost). `full_baseline`
runs it for real instead. Peak memory: in a fresh subprocess per configuration, after loading
the model and one warm-up sample, the kernel's resident-set high-water mark is reset
(/proc/self/clear_refs) and read back (VmHWM) after one sample: the extra memory sampling takes.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ikmo.motion_model.constraints import ControlSignals
from ikmo.motion_model.model_config import OptimizationConfig
from ikmo.motion_model.representation.skeleton import HUMANML3D_22, MAX_FRAMES
from ikmo.motion_model.sampling import MotionModel, load_model, sample

log = logging.getLogger(__name__)

OMNI_STEPS = 1000
OMNI_ITERS = 10
OMNI_LAST_STEPS = 10
OMNI_LAST_ITERS = 500


@dataclass
class SpeedConfig:
    n_frames: int = MAX_FRAMES
    n_keyframes: int = 2
    repeats: int = 5
    warmup: int = 1
    num_threads: int = 2
    probe_steps: int = 10
    full_baseline: bool = False
    measure_memory: bool = True
    seed: int = 0


@dataclass
class SpeedResult:
    n_frames: int
    n_keyframes: int
    num_threads: int
    steps: int
    guidance_scale: float
    optimization_iterations_per_step: int
    optimization_final_iterations: int
    optimization_act_fraction: float
    times_s: list[float]
    median_s: float
    baseline_schedule: dict[str, int]
    baseline_s: float
    baseline_measured: bool
    speedup: float
    step_s: float
    iteration_s: float
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def speed_case(n_frames: int = MAX_FRAMES, n_keyframes: int = 2, seed: int = 0) -> ControlSignals:
    """A synthetic controlled case: a walk along a gentle arc (dense xz trajectory, 1.2 m/s) and
    `n_keyframes` standing poses (the rest skeleton) spread over the motion. Only the cost matters
    here, not realism; the constraint tensors have the same shapes as any real case."""
    T = n_frames
    t = np.arange(T) / 20.0
    theta = 0.15 * t
    r = 1.2 / 0.15
    traj = np.stack([r * (1 - np.cos(theta)), np.full(T, 0.95), r * np.sin(theta)], axis=1).astype(np.float32)
    traj_mask = np.zeros((T, 3), dtype=bool)
    traj_mask[:, [0, 2]] = True
    parents, offs = HUMANML3D_22.parents, HUMANML3D_22.offsets()
    rest = np.zeros((HUMANML3D_22.n_joints, 3))
    for j in range(1, len(parents)):
        rest[j] = rest[parents[j]] + offs[j]
    pose = np.zeros((T, HUMANML3D_22.n_joints, 3), dtype=np.float32)
    pose_mask = np.zeros((T, HUMANML3D_22.n_joints), dtype=bool)
    for f in np.linspace(0, T - 1, n_keyframes + 2)[1:-1].round().astype(int):
        pose[f] = rest
        pose_mask[f] = True
    return ControlSignals(torch.as_tensor(traj), torch.as_tensor(traj_mask), torch.as_tensor(pose),
                          torch.as_tensor(pose_mask), torch.as_tensor(pose_mask.astype(np.float32)))


def _time_sample(model: MotionModel, control: ControlSignals, steps: int, opt: OptimizationConfig,
                 guidance_scale: float, seed: int) -> float:
    t0 = time.perf_counter()
    sample(model, ["a person walks forward and turns slightly"], [control.n_frames], [control], seed=seed,
           steps=steps, guidance_scale=guidance_scale, optimization=opt)
    return time.perf_counter() - t0


def omni_schedule_cost(step_s: float, iteration_s: float, fixed_s: float = 0.0) -> float:
    """Seconds of OmniControl's schedule from unit costs: 1000 steps, 10 iterations per step except
    500 in the last 10 steps."""
    iters = (OMNI_STEPS - OMNI_LAST_STEPS) * OMNI_ITERS + OMNI_LAST_STEPS * OMNI_LAST_ITERS
    return fixed_s + OMNI_STEPS * step_s + iters * iteration_s


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_worker(weights: str | None, n_frames: int, n_keyframes: int, steps: int, opt_json: str,
                     guidance_scale: float, num_threads: int, queue: Any) -> None:
    torch.set_num_threads(num_threads)
    model = load_model(weights)
    control = speed_case(n_frames, n_keyframes)
    opt = OptimizationConfig.model_validate_json(opt_json)
    _time_sample(model, control, 1, opt, guidance_scale, 0)  # text encoder, caches: not the sampling's cost
    # Loading leaves a transient peak above anything sampling needs; reset the mark so the
    # figure is the sampling's own peak. Without /proc (not Linux) fall back to ru_maxrss.
    if _reset_peak_rss() and (rss := _status_kib("VmRSS")) is not None:
        _time_sample(model, control, steps, opt, guidance_scale, 0)
        peak = _status_kib("VmHWM") or rss
        queue.put((rss * 1024, (peak - rss) * 1024))
        return
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _time_sample(model, control, steps, opt, guidance_scale, 0)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    queue.put((before * unit, (after - before) * unit))


def peak_rss_mb(weights: Path | None, n_frames: int, n_keyframes: int, steps: int, opt: OptimizationConfig,
                guidance_scale: float, num_threads: int) -> tuple[float, float]:
    """(resident memory after loading and one warm-up sample, extra peak resident memory of one
    sample) in MiB, measured in a fresh spawned process so earlier runs do not hide the peak."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_peak_rss_worker, args=(str(weights) if weights else None, n_frames, n_keyframes, steps,
                                                    opt.model_dump_json(), guidance_scale, num_threads, q))
    p.start()
    try:
        base_b, extra_b = q.get(timeout=1800)
    finally:
        p.join()
    return base_b / 2**20, extra_b / 2**20


def run_speed_benchmark(model: MotionModel, cfg: SpeedConfig, weights: Path | None = None) -> SpeedResult:
    """Median wall time of our schedule vs OmniControl's schedule on the same model and case."""
    torch.set_num_threads(cfg.num_threads)
    control = speed_case(cfg.n_frames, cfg.n_keyframes, cfg.seed)
    dcfg, opt = model.diffusion.cfg, model.optimization
    steps, gs = dcfg.sample_steps, dcfg.guidance_scale
    notes: list[str] = []
    for i in range(cfg.warmup):
        _time_sample(model, control, steps, opt, gs, cfg.seed + i)
    times = [_time_sample(model, control, steps, opt, gs, cfg.seed + i) for i in range(cfg.repeats)]
    median = statistics.median(times)
    log.info("ours: %d steps, %d iterations/step: median %.3fs over %d runs", steps, opt.iterations, median,
             cfg.repeats)

    # Unit costs from k-step probes (same model, same case): with and without 10 iterations per step.
    k = cfg.probe_steps
    no_opt = opt.model_copy(update={"enabled": False})
    omni_opt = opt.model_copy(update={"enabled": True, "iterations": OMNI_ITERS, "act_fraction": 1.0,
                                      "final_iterations": 0})
    t_plain = statistics.median(_time_sample(model, control, k, no_opt, gs, cfg.seed) for _ in range(3))
    t_opt = statistics.median(_time_sample(model, control, k, omni_opt, gs, cfg.seed) for _ in range(3))
    step_s = t_plain / k
    iteration_s = max(t_opt - t_plain, 0.0) / (k * OMNI_ITERS)
    schedule = {"steps": OMNI_STEPS, "iterations_per_step": OMNI_ITERS, "last_steps": OMNI_LAST_STEPS,
                "last_iterations": OMNI_LAST_ITERS}
    if cfg.full_baseline:
        # 10 per step for all steps, then the last-10-steps' extra (500 − 10) as final iterations on
        # the last step: the same count of gradient iterations and denoising steps.
        full = omni_opt.model_copy(update={"act_fraction": 1.0,
                                           "final_iterations": OMNI_LAST_STEPS * (OMNI_LAST_ITERS - OMNI_ITERS)})
        baseline = _time_sample(model, control, OMNI_STEPS, full, gs, cfg.seed)
        notes.append("baseline measured in full: 1000 steps x 10 iterations, the last steps' extra "
                     "4900 iterations run at the final step")
    else:
        baseline = omni_schedule_cost(step_s, iteration_s)
        notes.append(f"baseline estimated from {k}-step probes with and without {OMNI_ITERS} iterations per step, "
                     "scaled to 1000 steps and 14,900 iterations")
    peak: dict[str, float] = {}
    if cfg.measure_memory:
        load_mb, ours_mb = peak_rss_mb(weights, cfg.n_frames, cfg.n_keyframes, steps, opt, gs, cfg.num_threads)
        # Memory does not grow with the number of steps or iterations (nothing is kept across
        # them), so the baseline's peak is measured on a 2-step probe of its per-step work.
        _, omni_mb = peak_rss_mb(weights, cfg.n_frames, cfg.n_keyframes, 2, omni_opt, gs, cfg.num_threads)
        peak = {"after_load_mb": load_mb, "ours_extra_mb": ours_mb, "baseline_extra_mb": omni_mb}
    return SpeedResult(
        n_frames=cfg.n_frames, n_keyframes=cfg.n_keyframes, num_threads=cfg.num_threads, steps=steps,
        guidance_scale=gs, optimization_iterations_per_step=opt.iterations if opt.enabled else 0,
        optimization_final_iterations=opt.final_iterations if opt.enabled else 0,
        optimization_act_fraction=opt.act_fraction, times_s=times, median_s=median,
        baseline_schedule=schedule, baseline_s=baseline, baseline_measured=cfg.full_baseline,
        speedup=baseline / median if median > 0 else float("nan"), step_s=step_s, iteration_s=iteration_s,
        peak_rss_mb=peak, notes=notes,
    )


def format_speed(r: SpeedResult) -> str:
    """Human-readable summary lines."""
    b = r.baseline_schedule
    lines = [
        f"case: {r.n_frames} frames, dense trajectory + {r.n_keyframes} keyframes, {r.num_threads} CPU threads",
        f"ours: {r.steps} DDIM steps, CFG {r.guidance_scale}, {r.optimization_iterations_per_step} optimization "
        f"iterations/step (+{r.optimization_final_iterations} at the end, acting on the last "
        f"{r.optimization_act_fraction:.0%} of steps): median {r.median_s:.3f}s "
        f"(runs: {', '.join(f'{t:.3f}' for t in r.times_s)})",
        f"baseline (OmniControl schedule: {b['steps']} steps, {b['iterations_per_step']} iterations/step, "
        f"{b['last_iterations']} in the last {b['last_steps']}): "
        f"{r.baseline_s:.1f}s ({'measured' if r.baseline_measured else 'estimated'}; step {r.step_s * 1e3:.1f} ms, "
        f"iteration {r.iteration_s * 1e3:.2f} ms)",
        f"speed-up: {r.speedup:.0f}x; target <= 2 s per motion: {'met' if r.median_s <= 2.0 else 'NOT met'}",
    ]
    if r.peak_rss_mb:
        p = r.peak_rss_mb
        lines.append(f"memory: {p['after_load_mb']:.0f} MiB after load; peak extra while sampling: ours "
                     f"{p['ours_extra_mb']:.1f} MiB, baseline {p['baseline_extra_mb']:.1f} MiB")
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)
