"""Reports of an agent evaluation: per-provider summary (pass rate per category and overall,
pass@k and pass^k over repeats, schema-valid first answers, retries, fallbacks, critique rounds,
latency, tokens), a markdown table comparing providers, a JSON file and a PNG chart."""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..metrics import REAL_SKATING, REAL_SKATING_TRAVELLING
from .cases import CATEGORIES

log = logging.getLogger(__name__)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def _p90(xs: Sequence[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]


def summarise(records: Sequence[dict[str, Any]], providers: Sequence[str] | None = None) -> dict[str, Any]:
    """{provider: {...}} of the records (one per case × provider × repeat)."""
    by_prov: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_prov[r["provider"]].append(r)
    order = list(providers) if providers else sorted(by_prov)
    out: dict[str, Any] = {}
    for p in order:
        rs = by_prov.get(p, [])
        if not rs:
            continue
        cats: dict[str, list[bool]] = defaultdict(list)
        per_case: dict[str, list[bool]] = defaultdict(list)
        for r in rs:
            cats[r["category"]].append(bool(r["passed"]))
            per_case[r["case"]].append(bool(r["passed"]))
        k = max(len(v) for v in per_case.values())
        first = sum(r.get("first_answers", 0) for r in rs)
        invalid = sum(r.get("first_invalid", 0) for r in rs)
        tin = [r["tokens_in"] for r in rs if r.get("tokens_in") is not None]
        tout = [r["tokens_out"] for r in rs if r.get("tokens_out") is not None]
        lat = [float(r["latency_s"]) for r in rs]
        sims = [float(r["text_similarity"]) for r in rs if r.get("text_similarity") is not None]
        out[p] = {
            "runs": len(rs), "cases": len(per_case), "repeats": k,
            "pass_rate": sum(r["passed"] for r in rs) / len(rs),
            "categories": {c: {"n": len(v), "pass_rate": sum(v) / len(v)}
                           for c, v in sorted(cats.items(), key=lambda kv: CATEGORIES.index(kv[0])
                                              if kv[0] in CATEGORIES else 99)},
            "pass_at_k": sum(any(v) for v in per_case.values()) / len(per_case),
            "pass_pow_k": sum(all(v) for v in per_case.values()) / len(per_case),
            "schema_valid_first": None if first == 0 else (first - invalid) / first,
            "llm_calls": sum(r.get("calls", 0) for r in rs),
            "structured_retries": sum(r.get("structured_retries", 0) for r in rs),
            "validation_retries": sum(r.get("validation_retries", 0) for r in rs),
            "fallback_runs": sum(1 for r in rs if r.get("fallbacks", 0) > 0) / len(rs),
            "critique_rounds_mean": sum(r.get("critique_rounds", 0) for r in rs) / len(rs),
            "latency_median_s": statistics.median(lat), "latency_p90_s": _p90(lat),
            "tokens_in": sum(tin) if tin else None, "tokens_out": sum(tout) if tout else None,
            "text_similarity_mean": statistics.fmean(sims) if sims else None,
            "failing": sorted({r["case"] for r in rs if not r["passed"]}),
            **_motion_summary(rs),
        }
    return out


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _motion_summary(rs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Motion-level figures over the runs that made a motion (`runner.motion_measures`)."""
    ms = [r["motion"] for r in rs if r.get("motion")]
    skate = [m["foot_skating"] for m in ms if m.get("foot_skating") is not None]
    facing = [m["facing_vs_travel_deg"] for m in ms if m.get("facing_vs_travel_deg") is not None]
    return {"motions": len(ms),
            "skating_median": statistics.median(skate) if skate else None,
            "skating_p90": _p90(skate) if skate else None,
            "skating_within_real": _share([s <= REAL_SKATING for s in skate]),
            # runs recorded before the kind-aware level have none: left out, not guessed
            "skating_within_kind": _share([m["foot_skating"] <= m["skating_level"] for m in ms
                                           if m.get("foot_skating") is not None and m.get("skating_level")]),
            "facing_vs_travel_median_deg": statistics.median(facing) if facing else None,
            "facing_motions": len(facing)}


def markdown_table(summary: dict[str, Any]) -> str:
    """One table, providers side by side: per-category pass rates, then the other measures."""
    provs = list(summary)
    cats = [c for c in CATEGORIES if any(c in s["categories"] for s in summary.values())]
    head = "| | " + " | ".join(provs) + " |\n|---|" + "---:|" * len(provs)
    rows = [head]

    def row(name: str, vals: list[str]) -> None:
        rows.append(f"| {name} | " + " | ".join(vals) + " |")

    for c in cats:
        row(c, [(f"{_pct(s['categories'][c]['pass_rate'])} ({s['categories'][c]['n']})" if c in s["categories"]
                 else "–") for s in summary.values()])
    row("**overall**", [f"**{_pct(s['pass_rate'])}** ({s['runs']})" for s in summary.values()])
    row("pass@k / pass^k (k)", [f"{_pct(s['pass_at_k'])} / {_pct(s['pass_pow_k'])} ({s['repeats']})"
                                for s in summary.values()])
    row("schema-valid first answers", [_pct(s["schema_valid_first"]) for s in summary.values()])
    row("LLM calls / structured retries", [f"{s['llm_calls']} / {s['structured_retries']}" for s in summary.values()])
    row("validation retries", [str(s["validation_retries"]) for s in summary.values()])
    row("runs with an offline fallback", [_pct(s["fallback_runs"]) for s in summary.values()])
    row("critique rounds (mean)", [f"{s['critique_rounds_mean']:.2f}" for s in summary.values()])
    row("latency median / p90", [f"{s['latency_median_s']:.1f} / {s['latency_p90_s']:.1f} s"
                                 for s in summary.values()])
    row("tokens in / out", ["–" if s["tokens_in"] is None else f"{s['tokens_in']} / {s['tokens_out']}"
                            for s in summary.values()])
    row("text–motion similarity (mean)", ["–" if s["text_similarity_mean"] is None
                                          else f"{s['text_similarity_mean']:.3f}" for s in summary.values()])
    row("foot skating median / p90 (motions)", ["–" if s.get("skating_median") is None else
                                                f"{s['skating_median']:.3f} / {s['skating_p90']:.3f} ({s['motions']})"
                                                for s in summary.values()])
    row(f"motions skating ≤ real clips' {REAL_SKATING}", [_pct(s.get("skating_within_real"))
                                                         for s in summary.values()])
    row(f"motions skating ≤ real clips of their kind ({REAL_SKATING_TRAVELLING} if travelling)",
        [_pct(s.get("skating_within_kind")) for s in summary.values()])
    row("facing vs travel, forward walks (median)", ["–" if s.get("facing_vs_travel_median_deg") is None else
                                                     f"{s['facing_vs_travel_median_deg']:.1f}° ({s['facing_motions']})"
                                                     for s in summary.values()])
    return "\n".join(rows) + "\n"


def failures_text(records: Sequence[dict[str, Any]]) -> str:
    """One block per failing run: the case, and each unmet expectation (expected vs got)."""
    lines = []
    for r in sorted(records, key=lambda r: (r["provider"], r["category"], r["case"], r["repeat"])):
        if r["passed"]:
            continue
        lines.append(f"- {r['provider']} {r['case']} ({r['category']}, repeat {r['repeat']}):")
        for c in r["checks"]:
            if not c["ok"]:
                lines.append(f"    {c['name']}: expected {c['expected']}, got {c['got']}")
    return "\n".join(lines) + ("\n" if lines else "")


def chart(summary: dict[str, Any], path: Path) -> Path:
    """PNG: pass rate per category (bars grouped by category, one colour per provider)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = [c for c in CATEGORIES if any(c in s["categories"] for s in summary.values())] + ["overall"]
    provs = list(summary)
    width = 0.8 / max(len(provs), 1)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.6 * len(cats) * max(1, len(provs)) ** 0.5), 4.5))
    for i, p in enumerate(provs):
        s = summary[p]
        vals = [100 * (s["pass_rate"] if c == "overall" else s["categories"].get(c, {}).get("pass_rate", 0.0))
                for c in cats]
        ax.bar([x + i * width for x in range(len(cats))], vals, width, label=p)
    ax.set_xticks([x + width * (len(provs) - 1) / 2 for x in range(len(cats))], cats, rotation=45, ha="right")
    ax.set_ylabel("pass rate (%)")
    ax.set_ylim(0, 105)
    ax.set_title("IKMo agent evaluation: pass rate per category")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_reports(records: Sequence[dict[str, Any]], out: Path, providers: Sequence[str] | None = None,
                  info: dict[str, Any] | None = None) -> dict[str, Path]:
    """summary.json, report.md (table + failures) and pass_rates.png in `out`."""
    from ikmo.motion_model.fileio import write_json, write_text

    summary = summarise(records, providers)
    md = markdown_table(summary)
    fails = failures_text(records)
    paths = {"summary": write_json(out / "summary.json", {"info": info or {}, "providers": summary}),
             "report": write_text(out / "report.md", "# Agent evaluation\n\n" + md + "\n## Failing runs\n\n"
                                  + (fails or "none\n")),
             "chart": chart(summary, out / "pass_rates.png")}
    return {k: Path(v) for k, v in paths.items()}
