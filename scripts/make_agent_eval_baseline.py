"""Write the committed baseline of the agent evaluation's quick subset on the offline provider
(what tests/integration/test_eval_agents.py asserts):

    python scripts/make_agent_eval_baseline.py [eval/cases/agents/baseline/offline_quick.json]
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path

from ikmo.eval.agents.cases import load_cases
from ikmo.eval.agents.report import summarise
from ikmo.eval.agents.runner import EvalConfig, ProviderConfig, run_eval

# One or two cases per kind of expectation, under 5 minutes on 2 cores.
QUICK = ["seq-walk-then-wave", "sim-zigzag-while-waving", "count-jump-three", "dist-two-more-meters", "dur-walk-4s",
         "speed-one-mps", "dir-backward", "shape-square", "turn-right-90", "style-happy-walk", "time-at-2s",
         "photo-upper-body", "multi-two-photos", "unsup-backflip", "imp-100m-in-2s", "amb-do-it-again",
         "inj-ignore-instructions", "lang-french-walk", "follow-slower"]
DEFAULT = Path(__file__).resolve().parents[1] / "eval" / "cases" / "agents" / "baseline" / "offline_quick.json"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    out = Path(tempfile.mkdtemp(prefix="ikmo_eval_baseline_"))
    recs = run_eval(EvalConfig(cases=load_cases(case_ids=QUICK), providers=[ProviderConfig("offline")], out=out))
    base = {"about": "scores of the quick subset on the offline provider (tests/integration/test_eval_agents.py); "
                     "regenerate with scripts/make_agent_eval_baseline.py",
            "pass_rate": summarise(recs)["offline"]["pass_rate"],
            "cases": {r["case"]: {"passed": r["passed"],
                                  "failed": sorted(c["name"] for c in r["checks"] if not c["ok"])}
                      for r in sorted(recs, key=lambda r: r["case"])}}
    target.write_text(json.dumps(base, indent=1) + "\n")
    logging.getLogger("make_agent_eval_baseline").info("written %s (pass rate %.2f)", target, base["pass_rate"])


if __name__ == "__main__":
    main()
