"""Confidence intervals shared by the benchmarks and the study analysis, all from scipy.stats.

- `bootstrap_mean_ci`: a BCa bootstrap interval of a mean (seeded), for many paired values (the
  study's rating differences, a benchmark's per-case differences);
- `t_interval`: Student's t interval of a mean, for a few values (one per seed of cases), where a
  bootstrap of three numbers would say nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 10_000


def bootstrap_mean_ci(values: Sequence[float] | np.ndarray, seed: int = 0, confidence: float = 0.95,
                      n_resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """(low, high) BCa bootstrap interval of the mean of `values` (N,); the value itself when N < 2 or
    the values do not vary (BCa is undefined there), NaN for no values."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2 or np.ptp(v) == 0:
        m = float(v.mean()) if len(v) else float("nan")
        return m, m
    res = stats.bootstrap((v,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                          method="BCa", rng=np.random.default_rng(seed))
    lo, hi = res.confidence_interval
    return float(lo), float(hi)


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of the mean of `values` (N,); low = high = mean when N < 2
    or the values do not vary."""
    v = np.asarray(values, dtype=np.float64)
    m = float(v.mean()) if len(v) else float("nan")
    if len(v) < 2 or np.ptp(v) == 0:
        return m, m, m
    lo, hi = stats.t.interval(confidence, len(v) - 1, loc=m, scale=stats.sem(v))
    return m, float(lo), float(hi)
