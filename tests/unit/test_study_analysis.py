"""`ikmo study analyze`'s statistics against values computed by hand on a tiny fixed data set."""

from __future__ import annotations

import math

import pytest

from ikmo.eval.study.analysis import analyze, min_n_for, rank_biserial, smallest_wilcoxon_p
from ikmo.eval.study.report import html_report, markdown, write_report

pytestmark = pytest.mark.unit

A, B = "no_agents", "agents"


def _row(p: int, pos: int, item: str, left: str, right: str, rl: int, rr: int, choice: str,
         kind: str = "pair", ok: bool = True) -> dict:
    trial = f"{item}:{A}-{B}" if kind == "pair" else f"attention:{kind}"
    return {"participant": p, "position": pos, "trial": trial, "kind": kind, "item": item,
            "left_stimulus": f"{item}__{left}", "right_stimulus": f"{item}__{right}", "left_condition": left,
            "right_condition": right, "rating_left": rl, "rating_right": rr, "choice": choice,
            "attention_ok": int(ok), "submitted": 0.0}


def _pair(p: int, pos: int, item: str, ra: int, rb: int, chose_b: bool, b_left: bool) -> dict:
    """A pair trial given by the ratings of A and B; `b_left` puts B on the left (the mapping is tested)."""
    if b_left:
        return _row(p, pos, item, B, A, rb, ra, "left" if chose_b else "right")
    return _row(p, pos, item, A, B, ra, rb, "right" if chose_b else "left")


def data() -> list[dict]:
    """Participants 0-3 included; 4 failed the identical check; 5 did not finish.

    Per-participant means (A, B): P0 (2.5, 5.5), P1 (4, 4.5), P2 (4.5, 3.5), P3 (1.5, 3.5);
    differences B − A = 3, 0.5, −1, 2. B chosen 5 of 8 times."""
    rows = [
        _pair(0, 0, "i1", 2, 5, True, False), _pair(0, 1, "i2", 3, 6, True, True),
        _pair(1, 0, "i1", 4, 5, True, True), _pair(1, 1, "i2", 4, 4, False, False),
        _pair(2, 0, "i1", 5, 3, False, False), _pair(2, 1, "i2", 4, 4, False, True),
        _pair(3, 0, "i1", 1, 4, True, True), _pair(3, 1, "i2", 2, 3, True, False),
        _pair(4, 0, "i1", 7, 1, False, False), _pair(4, 1, "i2", 7, 1, False, False),
        _pair(5, 0, "i1", 1, 7, True, False),
    ]
    for p in range(5):
        rows.append(_row(p, 2, "i1", B, B, 5, 5 if p != 4 else 1, "left", kind="identical", ok=p != 4))
    return rows


def test_analysis_matches_hand_computed_values(tmp_path):
    res = analyze(data(), [A, B], n_trials=3, seed=0, items=["i1", "i2"])
    assert res["participants"] == 6 and res["included"] == 4
    assert res["excluded"] == {"4": "failed attention check attention:identical",
                               "5": "did not finish (1 of 3 trials)"}
    assert res["attention"] == {"attention:identical": {"passed": 4, "failed": 1}}
    (c,) = res["comparisons"]
    assert c["n"] == 4 and c["trials"] == 8
    assert c["mean_a"] == pytest.approx(3.125) and c["mean_b"] == pytest.approx(4.25)
    assert c["mean_diff"] == pytest.approx(1.125)
    # |d| = 0.5, 1, 2, 3 → ranks 1..4; R+ = 1 + 3 + 4 = 8, R− = 2; W = min = 2
    assert c["wilcoxon_W"] == pytest.approx(2.0)
    # exact: of the 16 sign patterns, 3 have R− ≤ 2 ({}, {1}, {2}); two-sided p = 2 · 3/16
    assert c["method"] == "exact" and c["p"] == pytest.approx(0.375)
    assert c["rank_biserial"] == pytest.approx(0.6)  # (8 − 2) / 10
    lo, hi = c["ci95_diff"]
    assert -1.0 <= lo < 1.125 < hi <= 3.0
    # B chosen 5 of 8: two-sided binomial p = 2 · (1 + 8 + 28 + 56) / 256
    assert c["choices_b"] == 5 and c["binomial_p"] == pytest.approx(2 * 93 / 256)
    items = {r["item"]: r for r in c["items"]}
    assert [r["item"] for r in c["items"]] == ["i1", "i2"]
    assert items["i1"]["mean_a"] == pytest.approx(3.0) and items["i1"]["mean_b"] == pytest.approx(4.25)
    assert items["i1"]["share_b"] == pytest.approx(0.75) and items["i2"]["share_b"] == pytest.approx(0.5)
    assert items["i2"]["mean_a"] == pytest.approx(3.25) and items["i2"]["mean_b"] == pytest.approx(4.25)
    assert res["sample_size"]["smallest_p"] == pytest.approx(2 / 16)
    assert c["ci95_diff"] == analyze(data(), [A, B], 3, seed=0)["comparisons"][0]["ci95_diff"]  # seeded

    paths = write_report(res, tmp_path, "Study t", simulated=True)
    md = paths["markdown"].read_text()
    assert "Simulated raters, not people" in md and "| no_agents vs agents | 4 | 3.12 | 4.25 |" in md
    page = paths["html"].read_text()
    assert '<img src="ratings.png"' in page and "<table>" in page
    for png in ("ratings", "preferences"):
        assert paths[png].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[png].stat().st_size > 5000
    assert "<h1>Study t</h1>" in html_report(markdown(res, "Study t", False), "Study t")


def test_sample_size_limits():
    assert smallest_wilcoxon_p(10) == pytest.approx(2 / 2**10)  # ≈ 0.002, the paper's n
    assert smallest_wilcoxon_p(5) == pytest.approx(0.0625)
    assert min_n_for(0.05) == 6
    assert rank_biserial([1, 2, 3]) == 1.0 and rank_biserial([-1, -2]) == -1.0
    assert math.isnan(rank_biserial([0, 0]))


def test_ties_use_the_normal_approximation_and_no_answers_is_a_clear_error():
    rows = [_pair(p, 0, "i1", 3, 5, True, p % 2 == 0) for p in range(6)]  # every difference 2: all tied
    (c,) = analyze(rows, [A, B], n_trials=1)["comparisons"]
    assert c["method"] == "normal approx." and c["p"] < 0.05 and c["rank_biserial"] == 1.0
    assert c["ci95_diff"] == [2.0, 2.0]
    from ikmo.motion_model.errors import InputFileError

    with pytest.raises(InputFileError, match="no answers yet"):
        analyze([], [A, B], n_trials=1)
