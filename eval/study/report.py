"""The analysis as people read it: figures (matplotlib PNG) and a markdown and an HTML report that
embed them, in `DIR/analysis/`.

- `ratings.png`: per condition, a box plot of the participants' mean ratings with each participant
  as a dot, a grey line joining each participant's pair (first comparison);
- `preferences.png`: per item, the share of forced choices for each condition of a comparison.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from ikmo.motion_model.fileio import write_json, write_text

from .analysis import fmt

RATINGS_PNG = "ratings.png"
PREFS_PNG = "preferences.png"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def ratings_figure(result: dict[str, Any], path: Path) -> Path:
    """Box + strip plot of per-participant mean ratings, one box per condition of each comparison."""
    plt = _plt()
    comps = result["comparisons"]
    fig, axes = plt.subplots(1, len(comps), figsize=(3.6 * len(comps) + 1, 4.2), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, c in zip(axes[0], comps, strict=True):
        a = [p["mean_a"] for p in c["participants"]]
        b = [p["mean_b"] for p in c["participants"]]
        ax.boxplot([a, b], widths=0.45, showfliers=False)
        ja, jb = 1 + rng.uniform(-0.08, 0.08, len(a)), 2 + rng.uniform(-0.08, 0.08, len(b))
        for x0, y0, x1, y1 in zip(ja, a, jb, b, strict=True):
            ax.plot([x0, x1], [y0, y1], color="0.75", lw=0.8, zorder=1)
        ax.scatter(ja, a, s=22, color="tab:orange", zorder=2)
        ax.scatter(jb, b, s=22, color="tab:blue", zorder=2)
        ax.set_xticks([1, 2], [c["a"], c["b"]])
        ax.set_ylim(0.5, 7.5)
        ax.set_yticks(range(1, 8))
        ax.set_ylabel("mean rating per participant (1–7)")
        ax.set_title(f"n = {c['n']}, p = {fmt(c['p'], 3)}, r = {fmt(c['rank_biserial'])}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("How well does the motion match what you expected?", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def preferences_figure(result: dict[str, Any], path: Path) -> Path:
    """Per item, horizontal stacked bars: share of forced choices for a vs b (one panel per comparison)."""
    plt = _plt()
    comps = result["comparisons"]
    n_items = max((len(c["items"]) for c in comps), default=1)
    fig, axes = plt.subplots(1, len(comps), figsize=(5.5 * len(comps), 0.42 * n_items + 2.0), squeeze=False)
    for ax, c in zip(axes[0], comps, strict=True):
        names = [r["item"] for r in c["items"]]
        share_b = np.array([r["share_b"] for r in c["items"]]) * 100
        y = np.arange(len(names))
        ax.barh(y, 100 - share_b, color="tab:orange", label=c["a"])
        ax.barh(y, share_b, left=100 - share_b, color="tab:blue", label=c["b"])
        ax.axvline(50, color="k", lw=0.8, ls="--")
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("forced choices (%)")
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.45 / (0.42 * n_items + 1.6) - 0.04), ncol=2, fontsize=8,
                  frameon=False)
        ax.set_title(f"{c['a']} vs {c['b']}: which matches better", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(result: dict[str, Any], title: str, simulated: bool) -> str:
    """The report as markdown (figures by relative path)."""
    ss = result["sample_size"]
    lines = [f"# {title}", ""]
    if simulated:
        lines += ["> **Simulated raters, not people.** These answers were given by `ikmo study simulate`: programs "
                  "that score each video by measured fit (checks, constraint errors, text–motion similarity) plus "
                  "per-rater bias and noise. They show the study machinery works; they say nothing about what "
                  "people think.", ""]
    lines += [f"Participants: {result['participants']}, included: {result['included']}.", ""]
    if result["excluded"]:
        lines += ["Excluded:", ""] + [f"- participant {p}: {why}" for p, why in result["excluded"].items()] + [""]
    if result["attention"]:
        lines += ["Attention checks: " + "; ".join(f"{t}: {v['passed']} passed, {v['failed']} failed"
                                                   for t, v in result["attention"].items()), ""]
    lines += ["| comparison (A vs B) | n | mean A | mean B | B − A (95 % CI) | Wilcoxon W | p | rank-biserial r "
              "| B chosen | binomial p |", "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for c in result["comparisons"]:
        ci = c["ci95_diff"]
        share = "–" if c["choice_share_b"] is None else f"{100 * c['choice_share_b']:.0f} % of {c['trials']}"
        lines.append(f"| {c['a']} vs {c['b']} | {c['n']} | {fmt(c['mean_a'])} | {fmt(c['mean_b'])} | "
                     f"{fmt(c['mean_diff'])} [{fmt(ci[0])}, {fmt(ci[1])}] | {fmt(c['wilcoxon_W'], 1)} | "
                     f"{fmt(c['p'], 4)} ({c['method']}) | {fmt(c['rank_biserial'])} | {share} | "
                     f"{fmt(c['binomial_p'], 4)} |")
    lines += ["", f"What the sample can show: with n = {ss['n']} pairs the smallest two-sided p the exact Wilcoxon "
              f"test can reach is {fmt(ss['smallest_p'], 4)} (n = 10: {ss['smallest_p_n10']:.4f}); at least "
              f"{ss['n_for_p_below_0.05']} are needed for p < 0.05 to be possible at all. The binomial test pools "
              "every forced choice: one person's choices are not independent, so read it as a description.", "",
              f"![ratings]({RATINGS_PNG})", "", f"![preferences]({PREFS_PNG})", ""]
    for c in result["comparisons"]:
        lines += [f"## Per item: {c['a']} (A) vs {c['b']} (B)", "", "| item | n | mean A | mean B | B chosen |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {r['item']} | {r['n']} | {fmt(r['mean_a'])} | {fmt(r['mean_b'])} | {100 * r['share_b']:.0f} % |"
                  for r in c["items"]]
        lines += ["", f"## Per participant: {c['a']} (A) vs {c['b']} (B)", "",
                  "| participant | mean A | mean B | B − A |", "|---|---:|---:|---:|"]
        lines += [f"| {q['participant']} | {fmt(q['mean_a'])} | {fmt(q['mean_b'])} | {fmt(q['mean_b'] - q['mean_a'])} |"
                  for q in c["participants"]]
        lines.append("")
    return "\n".join(lines)


def html_report(md: str, title: str) -> str:
    """The markdown report as a self-contained HTML page (markdown-it-py, tables on; images by relative path)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(md)
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}table{border-collapse:"
             "collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px}img{max-width:100%}"
             "blockquote{background:#fff4d6;padding:.2em 1em;border-left:4px solid #e0a800}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")


def write_report(result: dict[str, Any], out: Path, title: str, simulated: bool) -> dict[str, Path]:
    """analysis.json, ratings.png, preferences.png, report.md and report.html in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_json(out / "analysis.json", result),
             "ratings": ratings_figure(result, out / RATINGS_PNG),
             "preferences": preferences_figure(result, out / PREFS_PNG)}
    md = markdown(result, title, simulated)
    paths["markdown"] = write_text(out / "report.md", md)
    paths["html"] = write_text(out / "report.html", html_report(md, title))
    return paths
