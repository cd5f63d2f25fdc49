"""The request side of `ikmo bench control`: the same figures on the agent suite's requests.

Test clips say how well the model reproduces captioned mocap under dense constraints; a user's
request is different (a planned path, a few key poses, segments with their own texts). Here each
case is the spec the offline agents made from one suite request (`eval/cases/agents/`, single-turn
requests that give a motion), read from an offline agent evaluation's runs (`ikmo eval agents
--provider offline`; run first when the folder has none). Every method of the test-clip table
samples it with the same seeds, and the motions are scored as `ikmo generate` writes them (rigid
rig, feet locked again): FID against the real test clips, R@3 and the evaluator's similarity
against the request's words, foot skating and the share at or under the real clips' level, the body
facing its direction of travel on forward walks, jerk, ground penetration and floating, and the
constraint errors with and without the projection (the `no_projection` / `no_optimization` rows).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ikmo.motion_model.constraints import MotionSpec
from ikmo.motion_model.errors import ConfigError
from ikmo.motion_model.representation.skeleton import MAX_FRAMES

from .agents.cases import Case, load_cases
from .agents.runner import EvalConfig, ProviderConfig, read_results, run_eval, run_folder
from .cases import ControlCase
from .metrics import REAL_SKATING

log = logging.getLogger(__name__)

OFFLINE = ProviderConfig(label="offline")


def motion_cases(cases: Sequence[Case]) -> list[Case]:
    """The suite's single-turn requests that can give a motion (questions, refusals and follow-ups
    have no one spec to sample)."""
    return [c for c in cases if not c.request.conversation and c.expect.status in ("ok", "any")]


def request_cases(agents_out: Path, cases: Sequence[Case], notes: list[str] | None = None) -> list[ControlCase]:
    """One `ControlCase` per suite case whose offline run in `agents_out` made a motion: the spec the
    user got (its caption and segments, planned trajectory, keyframes), `request` the words typed.
    Motions longer than one model window are left out with a note (the benchmark samples one window)."""
    notes = notes if notes is not None else []
    out = []
    for case in cases:
        spec_path = run_folder(agents_out, OFFLINE.slug, case.id, 0) / "out" / "spec.json"
        if not spec_path.is_file():
            continue
        spec = MotionSpec.model_validate_json(spec_path.read_text())
        if spec.n_frames > MAX_FRAMES:
            notes.append(f"{case.id}: {spec.n_frames} frames, longer than one window; left out")
            continue
        out.append(ControlCase(case.id, "request", 0, spec.description.text, None, None, spec,
                               request=case.request.text, group=case.category))
    return out


def suite_request_cases(agents_out: Path, cases_dir: Path | None = None, weights: Path | None = None,
                        jobs: int = 1, notes: list[str] | None = None) -> list[ControlCase]:
    """The request cases of the suite in `cases_dir` (default the bundled one), running the offline
    agents into `agents_out` first for every case it has not run yet (resumable, as `ikmo eval agents`)."""
    cases = motion_cases(load_cases(cases_dir))
    done = {r["case"] for r in read_results(agents_out / "results.jsonl") if r["provider"] == OFFLINE.label}
    if any(c.id not in done for c in cases):
        log.info("bench requests: running the offline agents on %d suite requests into %s", len(cases), agents_out)
        run_eval(EvalConfig(cases=list(cases), providers=[OFFLINE], out=agents_out, jobs=jobs, weights=weights,
                            info={"for": "ikmo bench control --requests"}))
    found = request_cases(agents_out, cases, notes)
    if len(found) < 2:
        raise ConfigError(f"only {len(found)} suite request(s) in {agents_out} gave a motion; the request "
                          "table needs at least 2 (see its results.jsonl)")
    return found


def by_group(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per suite category and method of a request table (`run_control_benchmark`'s result): the number
    of motions, the mean distance of the pelvis from its planned path (m, motions with a path) and the
    share of motions that skate no more than the real clips. Why: the pooled figures cannot say whether
    turns, backward walks or sidesteps fail where forward walks do not (the data the model lacks)."""
    groups = [c.get("group") or "?" for c in result["cases"]]
    out = []
    for g in sorted(set(groups)):
        idx = [i for i, x in enumerate(groups) if x == g]
        row: dict[str, Any] = {"group": g, "n": len(idx)}
        for r in result["results"]:
            errs = [r["per_case"]["traj_err"][i] for i in idx if r["per_case"]["traj_err"][i] is not None]
            skate = np.asarray([r["per_case"]["skating"][i] for i in idx])
            level = np.asarray([r["per_case"]["skating_level"][i] for i in idx])
            row[r["method"]] = {"traj_err": float(np.mean(errs)) if errs else None,
                                "skating_ok_share": float(np.mean(skate <= REAL_SKATING)),
                                "skating_ok_kind_share": float(np.mean(skate <= level))}
        out.append(row)
    return out


def format_by_group(rows: Sequence[dict[str, Any]], methods: Sequence[str]) -> str:
    """A markdown table of `by_group`: one row per category, a cell "path error m · skating ≤ real % ·
    skating ≤ real clips of its kind %" per method."""
    def cell(v: dict[str, Any]) -> str:
        err = "–" if v["traj_err"] is None else f"{v['traj_err']:.2f} m"
        return f"{err} · {100 * v['skating_ok_share']:.0f} % · {100 * v['skating_ok_kind_share']:.0f} %"

    lines = ["| category | n | " + " | ".join(methods) + " |", "|" + "---|" * (len(methods) + 2)]
    lines += [f"| {r['group']} | {r['n']} | " + " | ".join(cell(r[m]) for m in methods) + " |" for r in rows]
    return "\n".join(lines)
