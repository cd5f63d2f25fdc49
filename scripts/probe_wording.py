"""Does the model step on a request's path because of the words it is given? A probe for the
motion-quality work (docs/eval.md, "A longer base, not bundled"):

    python scripts/probe_wording.py [--weights DIR] [--prefix shape,turn] [--agents-out DIR]

For each of the agent suite's requests whose case id starts with a prefix, the spec the offline
agents planned is sampled twice with the foot lock off and the same seed: once with the planner's
segment texts, once with every walking segment reading "a person walks forward." (the corpus's most
common walking caption). It logs foot skating (OmniControl's measure) and floating (no joint within
5 cm of the floor) for both. Only the words change: the path, keyframes and heading targets are the
spec's. The specs come from `ikmo bench control`'s request run (`--agents-out`, made if missing).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ikmo.eval.bench_requests import suite_request_cases
from ikmo.eval.metrics import floating_ratio
from ikmo.motion_model.constraints import MotionSpec, TimedText
from ikmo.motion_model.model_config import FootLockConfig
from ikmo.motion_model.motion_metrics import foot_skating_ratio
from ikmo.motion_model.sampling import MotionModel, load_model, sample

log = logging.getLogger("probe_wording")
PLAIN_WALK = "a person walks forward."


def _plain(texts: list[TimedText]) -> list[TimedText]:
    """The segments with each forward walk or turn while walking read as a plain forward walk
    (backwards and sideways walks keep their words: their direction is the point)."""
    def plain(t: str) -> bool:
        return "walk" in t and not any(w in t for w in ("backward", "sideways"))
    return [s.model_copy(update={"text": PLAIN_WALK}) if plain(s.text) else s for s in texts]


def _figures(model: MotionModel, spec: MotionSpec, texts: list[TimedText], text: str) -> str:
    joints = sample(model, [text], [spec.n_frames], [spec.to_control()], seed=0,
                    foot_lock=FootLockConfig(enabled=False), timed_texts=[texts])[0].joints
    return f"skating {foot_skating_ratio(joints):.2f} floating {floating_ratio(joints):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=Path, default=None, help="motion model folder (default: bundled)")
    ap.add_argument("--prefix", default="shape,turn", help="comma-separated case-id prefixes")
    ap.add_argument("--agents-out", type=Path, default=Path("runs/bench_control_requests"),
                    help="the offline agents' run folder of `ikmo bench control`")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = load_model(args.weights)
    prefixes = tuple(args.prefix.split(","))
    for case in suite_request_cases(args.agents_out, weights=args.weights):  # ControlCase
        if not case.case_id.startswith(prefixes) or case.spec is None:
            continue
        spec = case.spec
        timed = spec.description.timed_texts()
        plain_text = PLAIN_WALK if "walk" in spec.description.text else spec.description.text
        own = _figures(model, spec, timed, spec.description.text)
        other = _figures(model, spec, _plain(timed), plain_text)
        log.info("%-26s %-48s | own words: %s | plain walk: %s", case.case_id, spec.description.text[:48], own, other)


if __name__ == "__main__":
    main()
