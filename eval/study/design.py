"""Which trials a participant sees, in which order and on which side — a pure function of the study
and the participant's number, so a restarted server (or the analysis) recomputes the same plan.

- Trials: every item × every pair of conditions, plus the attention checks (an identical pair,
  and the item's own `agents` motion against a misfit one), placed at a third and two thirds.
- Order: shuffled per participant.
- Sides: randomised per participant and counterbalanced across participants: in each pair of
  participants (0, 1), (2, 3), … the second sees every trial with the sides of the first swapped,
  and within a participant half the trials (±1) show the first condition on the left.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

import numpy as np

from .definition import PIPELINE, Study

MISFIT = "attention_misfit"
IDENTICAL_TRIAL = "attention:identical"
MISFIT_TRIAL = "attention:misfit"


def stimulus_id(item: str, condition: str) -> str:
    """The id (and folder name) of the stimulus of `item` under `condition`."""
    return f"{item}__{condition}"


@dataclass(frozen=True)
class Trial:
    """One page of the study: an item's request and two stimuli side by side.

    kind: "pair" (two conditions), "identical" (one stimulus twice) or "misfit" (the item's agents
    motion and one made for another request; `fit_side` says where the fitting one is).
    """

    id: str
    kind: str
    item: str
    left: str
    right: str
    left_condition: str
    right_condition: str
    fit_side: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def base_trials(study: Study) -> list[tuple[str, str, str]]:
    """(item, condition A, condition B) for every item and pair of conditions (study order)."""
    names = [c.name for c in study.conditions]
    return [(it.id, a, b) for it in study.items for a, b in combinations(names, 2)]


def plan(study: Study, participant: int) -> list[Trial]:
    """The trials of participant number `participant` (0, 1, …), in the order shown."""
    base = base_trials(study)
    n = len(base)
    pair_rng = np.random.default_rng([study.seed, participant // 2, 17])
    sides = np.array([k % 2 == 0 for k in range(n)])  # True: condition A on the left
    pair_rng.shuffle(sides)
    if participant % 2:
        sides = ~sides
    order = np.random.default_rng([study.seed, participant, 29]).permutation(n)
    trials: list[Trial] = []
    for k in order:
        item, a, b = base[k]
        left, right = (a, b) if sides[k] else (b, a)
        trials.append(Trial(id=f"{item}:{a}-{b}", kind="pair", item=item, left=stimulus_id(item, left),
                            right=stimulus_id(item, right), left_condition=left, right_condition=right))
    checks: list[Trial] = []
    att = study.attention
    if att.identical is not None:
        s = stimulus_id(att.identical, PIPELINE)
        checks.append(Trial(id=IDENTICAL_TRIAL, kind="identical", item=att.identical, left=s, right=s,
                            left_condition=PIPELINE, right_condition=PIPELINE))
    if att.misfit is not None:
        fit = stimulus_id(att.misfit.item, PIPELINE)
        fit_left = participant % 2 == 0
        checks.append(Trial(id=MISFIT_TRIAL, kind="misfit", item=att.misfit.item,
                            left=fit if fit_left else MISFIT, right=MISFIT if fit_left else fit,
                            left_condition=PIPELINE if fit_left else MISFIT,
                            right_condition=MISFIT if fit_left else PIPELINE,
                            fit_side="left" if fit_left else "right"))
    for j, t in enumerate(checks):
        trials.insert(min(len(trials), (j + 1) * (n + len(checks)) // (len(checks) + 1)), t)
    return trials


def attention_passed(trial: Trial, rating_left: int, rating_right: int, choice: str) -> bool:
    """Whether an answer to an attention trial shows the participant was paying attention:
    identical → the two ratings within 1 point; misfit → the fitting motion rated higher and chosen."""
    if trial.kind == "identical":
        return abs(rating_left - rating_right) <= 1
    if trial.kind == "misfit":
        fit, other = (rating_left, rating_right) if trial.fit_side == "left" else (rating_right, rating_left)
        return fit > other and choice == trial.fit_side
    return True
