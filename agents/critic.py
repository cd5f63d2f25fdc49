"""The critic's policy: which measured errors are over their limits, how good an attempt is, and
which change (a new seed, stronger guidance) can plausibly fix the last attempt. Pure functions of
the attempts and the settings; the `critique` node applies them (and may ask a provider).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ikmo.motion_model.constraints import GenerationOptions

from .settings import AgentSettings
from .state import Attempt

Action = Literal["accept", "reseed", "stronger_guidance", "replan"]

# Stronger guidance multiplies the guidance scale and the stage-1 gradient iterations the last attempt used.
GUIDANCE_STEP = 1.5
ITERATIONS_STEP = 2
# When a retry can plausibly help (see `retry_plan`):
# - stronger guidance pulls the motion onto its trajectory/keyframes; once a stronger round has not
#   cut the constraint errors (sum of error/limit) by at least this fraction, another will not either;
MIN_GUIDANCE_GAIN = 0.10
# - a new seed changes foot skating only within the model's spread (0.26-0.43 over 5 seeds for the
#   bench's text + 2 photos request, 0.101 for every seed of its text request): one extra draw has a
#   fair chance; more draws are a lottery at ~1 s each.
MAX_SKATING_RESEEDS = 1
# A new seed is far from the request's own seeds and from the other retries' (one per round).
RESEED_OFFSET = 1000

CONSTRAINT_METRICS = ("traj_err_mean", "keyframe_mpjpe")
_PROBLEM_LABELS = {"traj_err_mean": ("trajectory error", "{:.2f} m"), "keyframe_mpjpe": ("keyframe MPJPE", "{:.3f} m"),
                   "foot_skating_ratio": ("foot skating", "{:.2f}")}


class CritiqueDecision(BaseModel):
    """The critic's verdict on one generated motion (the schema of prompt `critique_v1`)."""

    model_config = ConfigDict(extra="forbid")
    action: Action
    reason: str = Field(min_length=1, max_length=500)


def limits_of(settings: AgentSettings) -> dict[str, float]:
    """Metric name → the largest value the critic accepts."""
    return {"traj_err_mean": settings.max_traj_error_m, "keyframe_mpjpe": settings.max_keyframe_mpjpe_m,
            "foot_skating_ratio": settings.max_foot_skating}


DEFAULT_LIMITS = limits_of(AgentSettings())


def _metric(metrics: Mapping[str, float], key: str) -> float | None:
    v = metrics.get(key)
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def measured_problems(metrics: Mapping[str, float], limits: Mapping[str, float] | None = None) -> list[str]:
    """What the model's own report says is off (trajectory error, keyframe MPJPE, foot skating)."""
    out = []
    for key, limit in (limits or DEFAULT_LIMITS).items():
        if (v := _metric(metrics, key)) is not None and v > limit:
            name, fmt = _PROBLEM_LABELS[key]
            out.append(f"{name} {fmt.format(v)} > {limit:g}")
    return out


def attempt_score(metrics: Mapping[str, float], limits: Mapping[str, float] | None = None) -> tuple[int, float]:
    """How good an attempt is, lower is better: (number of limits exceeded, sum of value / limit over the
    measured metrics). An attempt within every limit beats any that exceeds one; among equals the smaller
    normalised errors win. The critic keeps the attempt with the lowest score."""
    lim = limits or DEFAULT_LIMITS
    ratios = [v / lim[k] for k in lim if (v := _metric(metrics, k)) is not None and lim[k] > 0]
    return sum(r > 1.0 for r in ratios), round(sum(ratios), 6)


def best_attempt(attempts: Sequence[Attempt], limits: Mapping[str, float]) -> Attempt:
    """The attempt with the lowest `attempt_score` (the first of equals)."""
    return min(attempts, key=lambda a: attempt_score(a.metrics, limits))


def _constraint_error(metrics: Mapping[str, float], limits: Mapping[str, float]) -> float:
    return sum(v / limits[k] for k in CONSTRAINT_METRICS if (v := _metric(metrics, k)) is not None)


def retry_plan(attempts: Sequence[Attempt], limits: Mapping[str, float]) -> tuple[Action | None, str]:
    """The change that can plausibly fix the last attempt, or None with the reason no retry would help.

    Constraint errors over their limits → stronger guidance, again only while the previous stronger
    round cut them by `MIN_GUIDANCE_GAIN`; foot skating alone → a new seed, at most `MAX_SKATING_RESEEDS`
    times per request (skating is mostly the model's and the constraints', not the seed's).
    """
    last = attempts[-1]
    problems = measured_problems(last.metrics, limits)
    over = {k for k in limits if (v := _metric(last.metrics, k)) is not None and v > limits[k]}
    if over & set(CONSTRAINT_METRICS):
        if last.change == "stronger_guidance" and len(attempts) > 1:
            before = _constraint_error(attempts[-2].metrics, limits)
            now = _constraint_error(last.metrics, limits)
            if now > before * (1.0 - MIN_GUIDANCE_GAIN):
                return None, (f"stronger guidance did not reduce the constraint errors ({before:.2f} → {now:.2f} "
                              "of their limits); another round would not either")
        return "stronger_guidance", "; ".join(problems)
    reseeds = sum(a.change == "reseed" for a in attempts)
    if reseeds >= MAX_SKATING_RESEEDS:
        return None, (f"foot skating stayed over {limits['foot_skating_ratio']:g} after {reseeds} new seed(s): it "
                      "comes from the model and the constraints more than from the seed")
    return "reseed", "; ".join(problems)


def decide(attempts: Sequence[Attempt], settings: AgentSettings, critique_round: int) -> CritiqueDecision:
    """The measurement rules' verdict on the last attempt: accept, or the retry that can help, within
    `settings.critique_rounds`."""
    limits = limits_of(settings)
    problems = measured_problems(attempts[-1].metrics, limits)
    best = best_attempt(attempts, limits).attempt
    if not problems:
        return CritiqueDecision(action="accept", reason="measured errors within limits")
    if critique_round >= settings.critique_rounds:
        return CritiqueDecision(action="accept", reason=f"out of critique rounds; best attempt kept ({best})")
    action, reason = retry_plan(attempts, limits)
    if action is None:
        return CritiqueDecision(action="accept", reason=f"{reason}; best attempt kept ({best})"[:500])
    return CritiqueDecision(action=action, reason=reason[:500])


def next_options(decision: CritiqueDecision, options: GenerationOptions, last: Attempt, critique_round: int
                 ) -> GenerationOptions:
    """The options of the retry a decision asks for: a new seed, or `GUIDANCE_STEP` times the guidance
    scale and `ITERATIONS_STEP` times the stage-1 iterations the last attempt's sampler used (its
    configured defaults included)."""
    if decision.action == "reseed":
        return options.model_copy(update={"seed": options.seed + RESEED_OFFSET + critique_round})
    if decision.action == "stronger_guidance":
        scale = last.guidance_scale if options.guidance_scale is None else options.guidance_scale
        steps = last.optimization_steps if options.optimization_steps is None else options.optimization_steps
        return options.model_copy(update={
            "guidance_scale": None if scale is None else scale * GUIDANCE_STEP,
            "optimization_steps": None if steps is None else steps * ITERATIONS_STEP})
    return options
