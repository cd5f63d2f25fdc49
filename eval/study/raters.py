"""Simulated raters: programs that answer the study's trials from the measured fit of each video
(`scoring.stimulus_fit`), each with its own bias and noise. They are not people: they show that the
whole path (build → serve → answers → analysis) works and what the measurements alone would
say.

A rater perceives a stimulus as fit + bias + noise, the noise drawn once per rater and stimulus
(the same video looks the same twice, as it would to a person), and rates it
round(1 + 6 · perceived) clipped to 1…7; the forced choice goes to the higher perceived value (a
coin for the identical pair). An inattentive rater (probability `inattentive`) answers at random —
the attention checks should catch most of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .design import Trial

BIAS_SD = 0.08  # in fit units (1 Likert point = 1/6)
NOISE_SD = (0.05, 0.15)  # each rater's noise sd drawn uniformly from this range
INATTENTIVE = 0.1


@dataclass
class Rater:
    """One simulated participant."""

    number: int
    bias: float
    noise_sd: float
    attentive: bool
    rng: np.random.Generator
    _seen: dict[str, float] = field(default_factory=dict)

    def perceived(self, stimulus: str, fit: float) -> float:
        if stimulus not in self._seen:
            self._seen[stimulus] = fit + self.bias + float(self.rng.normal(0.0, self.noise_sd))
        return self._seen[stimulus]

    def rating(self, stimulus: str, fit: float) -> int:
        return int(np.clip(round(1 + 6 * self.perceived(stimulus, fit)), 1, 7))

    def answer(self, trial: Trial, fits: dict[str, float]) -> tuple[int, int, str]:
        """(rating left, rating right, choice) for a trial, given each stimulus's fit in [0, 1]."""
        if not self.attentive:
            rl, rr = (int(x) for x in self.rng.integers(1, 8, size=2))
            return rl, rr, "left" if self.rng.random() < 0.5 else "right"
        rl, rr = self.rating(trial.left, fits[trial.left]), self.rating(trial.right, fits[trial.right])
        if trial.left == trial.right:
            return rl, rr, "left" if self.rng.random() < 0.5 else "right"
        pl, pr = self.perceived(trial.left, fits[trial.left]), self.perceived(trial.right, fits[trial.right])
        return rl, rr, "left" if pl >= pr else "right"


def make_raters(n: int, seed: int, inattentive: float = INATTENTIVE, first: int = 0) -> list[Rater]:
    """`n` raters numbered from `first`, reproducible from `seed`."""
    out = []
    for k in range(first, first + n):
        rng = np.random.default_rng([seed, k, 101])
        out.append(Rater(k, float(rng.normal(0.0, BIAS_SD)), float(rng.uniform(*NOISE_SD)),
                         bool(rng.random() >= inattentive), rng))
    return out
