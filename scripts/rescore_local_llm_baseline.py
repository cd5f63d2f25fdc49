"""Re-score the recorded local-LLM run that CI replays (eval/cases/agents/baseline/local_llm_run/)
against the current motion model and post-processes:

    python scripts/rescore_local_llm_baseline.py [RUN_DIR]

The recordings (the models' answers) stay as recorded; what the motion does with them does not: a
motion that skates less is accepted without a critique round, which changes the run's notes and so
its count of offline fallbacks, its checks and its motion figures. This replays every recorded run
and rewrites those outcome fields in results.jsonl, keeping each run's recorded latency and the
counts read from its cassette. Run it when the motion model or the foot lock changes, and review
the diff it logs (a change of pass/fail is a change of what the suite says, not only of numbers).
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path

from ikmo.eval.agents.cases import load_cases
from ikmo.eval.agents.runner import EvalConfig, read_results, replay_providers, run_eval

DEFAULT = Path(__file__).resolve().parents[1] / "eval" / "cases" / "agents" / "baseline" / "local_llm_run"
# What a replay recomputes from the motion; everything else in a record is the recording's.
OUTCOME = ("passed", "checks", "status", "answer", "fallbacks", "critique_rounds", "validation_retries",
           "text_similarity", "motion")
log = logging.getLogger("rescore_local_llm_baseline")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    recorded = read_results(run / "results.jsonl")
    cases = load_cases(case_ids=sorted({r["case"] for r in recorded}))
    out = Path(tempfile.mkdtemp(prefix="ikmo_rescore_"))
    replayed = {(r["case"], r["provider"], r["repeat"]): r
                for r in run_eval(EvalConfig(cases=cases, providers=replay_providers(run), out=out, replay=run))}
    lines = []
    for rec in recorded:
        new = replayed[(rec["case"], rec["provider"], rec["repeat"])]
        changed = [k for k in OUTCOME if rec.get(k) != new.get(k)]
        for k in ("passed", "fallbacks", "critique_rounds"):
            if k in changed:
                log.info("%s %s: %s %s -> %s", rec["case"], rec["provider"], k, rec.get(k), new.get(k))
        rec.update({k: new.get(k) for k in OUTCOME})
        lines.append(json.dumps(rec))  # as the runner writes its records
    (run / "results.jsonl").write_text("\n".join(lines) + "\n")
    log.info("re-scored %d runs in %s", len(lines), run / "results.jsonl")


if __name__ == "__main__":
    main()
