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

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ikmo.motion_model.errors import UsageError

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


class StudyClient:
    """A participant's side of the study's HTTP API (`ikmo study serve`), over plain HTTP (urllib)."""

    def __init__(self, base_url: str, link: str, timeout_s: float = 30.0) -> None:
        self.api = base_url.rstrip("/") + "/api" + link  # link: /p/TOKEN
        self.timeout_s = timeout_s

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(self.api + path, method="GET" if body is None else "POST",
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                data = r.read()
                return json.loads(data) if r.headers.get_content_type() == "application/json" else data
        except urllib.error.HTTPError as e:
            msg = json.loads(e.read() or b"{}").get("error", e.reason)
            raise UsageError(f"the study server answered {e.code}: {msg}") from None

    def state(self) -> dict[str, Any]:
        return dict(self._call(""))

    def consent(self) -> dict[str, Any]:
        return dict(self._call("/consent", {"consent": True}))

    def video(self, position: int, side: str) -> bytes:
        return bytes(self._call(f"/video/{position}/{side}"))

    def answer(self, position: int, rating_left: int, rating_right: int, choice: str) -> dict[str, Any]:
        return dict(self._call("/answer", {"position": position, "rating_left": rating_left,
                                           "rating_right": rating_right, "choice": choice,
                                           "played": {"left": True, "right": True}}))


def take_part(client: StudyClient, rater: Rater, trials: list[Trial], fits: dict[str, float]) -> int:
    """Walk one link to the end as a participant would: consent, then per trial fetch both videos
    and answer. `trials` is the participant's plan (what the server shows them: the rater needs it
    only to know which video is which, as a person knows by looking). Returns the answers given."""
    st = client.state()
    if not st["consented"]:
        st = client.consent()
    n = 0
    while not st["finished"]:
        k = st["trial"]["position"]
        for side in ("left", "right"):
            if not client.video(k, side):
                raise UsageError(f"trial {k}: the {side} video is empty")
        rl, rr, choice = rater.answer(trials[k], fits)
        st = client.answer(k, rl, rr, choice)
        n += 1
    return n
