"""The statistics of a study's answers (`ikmo study analyze DIR`), all from scipy.stats.

For each pair of conditions (A, B), over the included participants (finished, every attention
check passed):

- per-participant means of A's and of B's ratings (the unit of analysis: one pair per person);
- the Wilcoxon signed-rank test on those pairs (`scipy.stats.wilcoxon`, two-sided; exact when
  there are no ties or zero differences, else the normal approximation), with the matched-pairs
  rank-biserial correlation as its effect size: r = (R⁺ − R⁻) / (R⁺ + R⁻), R± the rank sums of the
  positive and negative differences B − A (zeros dropped, as the test drops them; Kerby 2014), so
  r = +1 when every participant rated B higher;
- a bootstrap 95 % CI of the mean difference B − A (`scipy.stats.bootstrap`, BCa, seeded);
- a binomial test of the forced choices (`scipy.stats.binomtest`, pooled over trials: choices of
  one person are not independent, so it is a description, not the main test);
- per-item tables (mean ratings, share choosing B);
- what the sample size can show: the smallest two-sided p the exact Wilcoxon test can reach with
  n pairs is 2 / 2ⁿ (n = 10: 0.00195), so n < 6 can never reach p < 0.05.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
from scipy import stats

from ikmo.motion_model.errors import InputFileError

from ..stats import bootstrap_mean_ci

ALPHA = 0.05


def rank_biserial(diffs: Sequence[float]) -> float:
    """Matched-pairs rank-biserial correlation of paired differences (zeros dropped): (R⁺ − R⁻) / (R⁺ + R⁻),
    with average ranks of |d| for ties (`scipy.stats.rankdata`). NaN when every difference is zero."""
    d = np.asarray(diffs, dtype=np.float64)
    d = d[d != 0]
    if not len(d):
        return float("nan")
    ranks = stats.rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def smallest_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p the exact signed-rank test reaches with n pairs (all differences one
    sign), computed by scipy on such a sample: 2 / 2ⁿ."""
    if n < 1:
        return float("nan")
    return float(stats.wilcoxon(np.arange(1.0, n + 1.0), method="exact").pvalue)


def min_n_for(alpha: float = ALPHA) -> int:
    """The fewest pairs with which the exact two-sided signed-rank test can reach p < alpha."""
    n = 1
    while smallest_wilcoxon_p(n) >= alpha:
        n += 1
    return n


def exclusions(answers: Sequence[dict[str, Any]], n_trials: int) -> dict[int, str]:
    """Participants left out of the analysis and why: did not finish, or failed an attention check."""
    by: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for a in answers:
        by[int(a["participant"])].append(a)
    out: dict[int, str] = {}
    for p, rows in sorted(by.items()):
        failed = [r["trial"] for r in rows if r["kind"] != "pair" and not r["attention_ok"]]
        if failed:
            out[p] = f"failed attention check {', '.join(failed)}"
        elif len(rows) < n_trials:
            out[p] = f"did not finish ({len(rows)} of {n_trials} trials)"
    return out


def _pair_rows(answers: Sequence[dict[str, Any]], a: str, b: str) -> list[tuple[int, str, float, float, bool]]:
    """(participant, item, rating of a, rating of b, chose b) for each pair trial of a vs b."""
    out = []
    for r in answers:
        if r["kind"] != "pair" or {r["left_condition"], r["right_condition"]} != {a, b}:
            continue
        ra, rb = ((r["rating_left"], r["rating_right"]) if r["left_condition"] == a
                  else (r["rating_right"], r["rating_left"]))
        chose = r["left_condition"] if r["choice"] == "left" else r["right_condition"]
        out.append((int(r["participant"]), str(r["item"]), float(ra), float(rb), chose == b))
    return out


def compare(answers: Sequence[dict[str, Any]], a: str, b: str, seed: int = 0) -> dict[str, Any]:
    """The comparison of conditions a and b (B − A: positive when b is rated higher)."""
    rows = _pair_rows(answers, a, b)
    per: dict[int, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for p, _, ra, rb, _ in rows:
        per[p][0].append(ra)
        per[p][1].append(rb)
    parts = sorted(per)
    ma = np.array([np.mean(per[p][0]) for p in parts])
    mb = np.array([np.mean(per[p][1]) for p in parts])
    d = mb - ma
    n = len(parts)
    res: dict[str, Any] = {"a": a, "b": b, "n": n, "trials": len(rows),
                           "participants": [{"participant": p, "mean_a": float(x), "mean_b": float(y)}
                                            for p, x, y in zip(parts, ma, mb, strict=True)],
                           "mean_a": float(ma.mean()) if n else None, "mean_b": float(mb.mean()) if n else None,
                           "sd_a": float(ma.std(ddof=1)) if n > 1 else None,
                           "sd_b": float(mb.std(ddof=1)) if n > 1 else None,
                           "mean_diff": float(d.mean()) if n else None,
                           "median_diff": float(np.median(d)) if n else None}
    nonzero = d[d != 0]
    if len(nonzero):
        exact = len(np.unique(np.abs(nonzero))) == len(nonzero) and len(nonzero) == n
        w = stats.wilcoxon(mb, ma, zero_method="wilcox", alternative="two-sided",
                           method="exact" if exact else "approx")
        res.update(wilcoxon_W=float(w.statistic), p=float(w.pvalue), method="exact" if exact else "normal approx.")
    else:
        res.update(wilcoxon_W=None, p=None, method="no non-zero difference")
    res["rank_biserial"] = rank_biserial(d) if n else None
    lo, hi = bootstrap_mean_ci(d, seed) if n else (None, None)
    res["ci95_diff"] = [lo, hi]
    k = sum(1 for r in rows if r[4])
    res["choices_b"] = k
    res["choice_share_b"] = k / len(rows) if rows else None
    res["binomial_p"] = float(stats.binomtest(k, len(rows), 0.5).pvalue) if rows else None
    items: dict[str, list[tuple[float, float, bool]]] = defaultdict(list)
    for _, item, ra, rb, cb in rows:
        items[item].append((ra, rb, cb))
    res["items"] = [{"item": it, "n": len(v), "mean_a": float(np.mean([x[0] for x in v])),
                     "mean_b": float(np.mean([x[1] for x in v])), "share_b": float(np.mean([x[2] for x in v]))}
                    for it, v in items.items()]
    res["smallest_p"] = smallest_wilcoxon_p(n)
    return res


def analyze(answers: Sequence[dict[str, Any]], conditions: Sequence[str], n_trials: int, seed: int = 0,
            items: Sequence[str] | None = None) -> dict[str, Any]:
    """Every pairwise comparison of `conditions` over the included participants (see the module doc).

    answers: rows of `responses.ANSWER_COLUMNS`; n_trials: trials per participant (to tell who finished);
    items: the study's item order for the per-item tables. Raises InputFileError without answers."""
    if not answers:
        raise InputFileError("no answers yet: run the study (ikmo study serve DIR) or simulate it "
                             "(ikmo study simulate DIR --raters N) first")
    excluded = exclusions(answers, n_trials)
    kept = [a for a in answers if int(a["participant"]) not in excluded]
    everyone = sorted({int(a["participant"]) for a in answers})
    attention: dict[str, dict[str, int]] = defaultdict(lambda: {"passed": 0, "failed": 0})
    for a in answers:
        if a["kind"] != "pair":
            attention[a["trial"]]["passed" if a["attention_ok"] else "failed"] += 1
    comps = [compare(kept, a, b, seed) for a, b in combinations(conditions, 2)]
    order = {it: k for k, it in enumerate(items or [])}
    for c in comps:
        c["items"].sort(key=lambda r: order.get(r["item"], len(order)))
    n = len(everyone) - len(excluded)
    return {"participants": len(everyone), "included": n, "excluded": {str(k): v for k, v in excluded.items()},
            "attention": dict(attention), "comparisons": comps,
            "sample_size": {"n": n, "smallest_p": smallest_wilcoxon_p(n), "n_for_p_below_0.05": min_n_for(ALPHA),
                            "smallest_p_n10": smallest_wilcoxon_p(10)}}


def fmt(x: float | None, digits: int = 2) -> str:
    """A number for a table ('–' for none or NaN; p-values below 0.001 in scientific notation)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if 0 < abs(x) < 10 ** (-digits - 1):
        return f"{x:.1e}"
    return f"{x:.{digits}f}"
