"""The confidence intervals of `eval.stats` and the verdicts `bench_compare.summarize` draws from them."""

from __future__ import annotations

import numpy as np
import pytest

from ikmo.eval.bench_compare import STAGES, summarize
from ikmo.eval.stats import bootstrap_mean_ci, t_interval


def test_t_interval_matches_the_hand_computed_one() -> None:
    # mean 2, sem 1/√3, t(0.975, 2 df) = 4.3027: 2 ± 2.4841
    m, lo, hi = t_interval([1.0, 2.0, 3.0])
    assert m == 2.0 and lo == pytest.approx(2 - 2.4841, abs=1e-3) and hi == pytest.approx(2 + 2.4841, abs=1e-3)
    assert t_interval([5.0]) == (5.0, 5.0, 5.0) and t_interval([4.0, 4.0]) == (4.0, 4.0, 4.0)


def test_bootstrap_interval_covers_the_mean_and_narrows_with_more_data() -> None:
    rng = np.random.default_rng(0)
    small, big = rng.normal(1.0, 1.0, 20), rng.normal(1.0, 1.0, 2000)
    lo_s, hi_s = bootstrap_mean_ci(small, seed=0)
    lo_b, hi_b = bootstrap_mean_ci(big, seed=0)
    assert lo_s < small.mean() < hi_s and lo_b < big.mean() < hi_b
    assert hi_b - lo_b < 0.3 * (hi_s - lo_s)
    assert lo_b < 1.0 < hi_b
    assert bootstrap_mean_ci(small, seed=0) == (lo_s, hi_s)  # seeded
    assert bootstrap_mean_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)


def _result(a: dict[str, float | list], b: dict[str, float | list]) -> dict:
    return {"results": [{"method": f"{n}_{s}", **vals} for s in STAGES for n, vals in (("A", a), ("B", b))]}


def test_summarize_pairs_by_case_and_says_which_is_lower_only_when_the_interval_excludes_zero() -> None:
    rng = np.random.default_rng(1)
    seeds = []
    for k in range(3):
        base = rng.uniform(0.5, 1.5, 40)
        noise = rng.normal(0, 0.01, 40)
        noise -= noise.mean()  # no true difference
        a = {"per_case": {"traj_err": list(base), "keyframe_mpjpe": [None] * 40, "skating": list(base * 0.1)},
             "fid": 0.10 + 0.01 * k, "r_precision_top3": 0.9}
        # B: the same cases 0.2 m further off (case-to-case spread is shared, so the paired CI is tight);
        # skating a noisy match; FID slightly above A's on every seed.
        b = {"per_case": {"traj_err": list(base + 0.2), "keyframe_mpjpe": [None] * 40,
                          "skating": list(base * 0.1 + noise)},
             "fid": 0.12 + 0.01 * k + 0.001 * k, "r_precision_top3": 0.9}
        seeds.append(_result(a, b))
    rows = {(r["stage"], r["metric"]): r for r in summarize(seeds, ("A", "B"))}
    traj = rows[("alone", "traj_err")]
    assert traj["n"] == 120 and traj["diff"] == pytest.approx(-0.2) and traj["verdict"] == "A lower"
    assert traj["diff_ci"][1] - traj["diff_ci"][0] < 1e-6  # an exact shift: no spread in the differences
    assert rows[("alone", "skating")]["verdict"] == "no difference shown"
    assert rows[("alone", "keyframe_mpjpe")]["n"] == 0  # no case had keyframes
    fid = rows[("ikmo", "fid")]
    assert fid["interval"] == "t over seeds" and fid["n"] == 3 and fid["diff"] == pytest.approx(-0.021)
    assert fid["verdict"] == "A lower"
    assert rows[("ikmo", "r_precision_top3")]["verdict"] == "no difference shown"


def test_a_difference_below_the_resolution_is_negligible_even_when_its_interval_excludes_zero() -> None:
    base = list(np.linspace(0.0, 1e-6, 30))
    a = {"per_case": {"traj_err": base, "keyframe_mpjpe": base, "skating": base}, "fid": 0.1, "r_precision_top3": 0.9}
    b = {"per_case": {"traj_err": [v + 1e-7 for v in base], "keyframe_mpjpe": base, "skating": base},
         "fid": 0.1, "r_precision_top3": 0.9}
    rows = {(r["stage"], r["metric"]): r for r in summarize([_result(a, b)] * 2, ("A", "B"))}
    assert rows[("alone", "traj_err")]["diff_ci"][1] < 0
    assert rows[("alone", "traj_err")]["verdict"] == "negligible (< 0.001)"
