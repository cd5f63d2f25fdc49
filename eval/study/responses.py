"""The answers of a served study: one SQLite file (`DIR/responses.sqlite`, WAL), every answer
committed when it is submitted, so a server killed with `kill -9` loses nothing it acknowledged.

Tables: `participants` (number, personal token, consent and finish times), `answers` (one row per
participant × trial: the two stimuli and conditions as shown, both ratings, the forced choice),
`meta` (the admin token). The web app (`ikmo study serve`) writes; `ikmo study analyze` reads.
A submission is checked here — the participant's next trial, ratings 1…7, a side — and a bad or
replayed one raises `SubmissionError` (its HTTP status and one line) and changes nothing.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .design import Trial, attention_passed

RESPONSES = "responses.sqlite"
LIKERT = (1, 7)
CHOICES = ("left", "right")
ANSWER_COLUMNS = ("participant", "position", "trial", "kind", "item", "left_stimulus", "right_stimulus",
                  "left_condition", "right_condition", "rating_left", "rating_right", "choice", "attention_ok",
                  "submitted")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participants (
    number INTEGER PRIMARY KEY, token TEXT NOT NULL UNIQUE, label TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL, consented REAL, finished REAL);
CREATE TABLE IF NOT EXISTS answers (
    participant INTEGER NOT NULL REFERENCES participants(number), position INTEGER NOT NULL,
    trial TEXT NOT NULL, kind TEXT NOT NULL, item TEXT NOT NULL,
    left_stimulus TEXT NOT NULL, right_stimulus TEXT NOT NULL,
    left_condition TEXT NOT NULL, right_condition TEXT NOT NULL,
    rating_left INTEGER NOT NULL CHECK (rating_left BETWEEN 1 AND 7),
    rating_right INTEGER NOT NULL CHECK (rating_right BETWEEN 1 AND 7),
    choice TEXT NOT NULL CHECK (choice IN ('left', 'right')),
    attention_ok INTEGER NOT NULL, submitted REAL NOT NULL,
    PRIMARY KEY (participant, trial), UNIQUE (participant, position));
"""


class SubmissionError(Exception):
    """A submission that is refused: `status` is its HTTP status (400, 403, 404, 409, 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Participant:
    number: int
    token: str
    label: str
    consented: float | None
    finished: float | None


def new_token() -> str:
    """An unguessable token (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)


class Store:
    """The responses file. Thread-safe (one connection behind a lock: the server's request threads
    share it; SQLite serialises writers anyway)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # each commit on disk before the answer is acknowledged
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- tokens and participants

    def admin_token(self) -> str:
        """The admin page's token (made once, kept in the file)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'admin_token'").fetchone()
            if row is not None:
                return str(row["value"])
            token = new_token()
            self._db.execute("INSERT INTO meta (key, value) VALUES ('admin_token', ?)", (token,))
            return token

    def ensure_participants(self, n: int, label: str = "") -> list[Participant]:
        """At least `n` participants (new ones get fresh tokens); returns all of them."""
        with self._lock:
            have = self._db.execute("SELECT COUNT(*) FROM participants").fetchone()[0]
            for k in range(have, n):
                self._db.execute("INSERT INTO participants (number, token, label, created) VALUES (?, ?, ?, ?)",
                                 (k, new_token(), label, time.time()))
        return self.participants()

    def add_participants(self, n: int, label: str = "") -> list[Participant]:
        """`n` more participants; returns the new ones."""
        with self._lock:
            have = self._db.execute("SELECT COUNT(*) FROM participants").fetchone()[0]
        self.ensure_participants(have + n, label)
        return self.participants()[have:]

    def participants(self) -> list[Participant]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM participants ORDER BY number").fetchall()
        return [Participant(r["number"], r["token"], r["label"], r["consented"], r["finished"]) for r in rows]

    def by_token(self, token: str) -> Participant | None:
        with self._lock:
            r = self._db.execute("SELECT * FROM participants WHERE token = ?", (token,)).fetchone()
        return None if r is None else Participant(r["number"], r["token"], r["label"], r["consented"], r["finished"])

    def consent(self, number: int) -> None:
        with self._lock:
            self._db.execute("UPDATE participants SET consented = COALESCE(consented, ?) WHERE number = ?",
                             (time.time(), number))

    # ----------------------------------------------------------------- answers

    def answered(self, number: int) -> int:
        """How many trials participant `number` has answered (their next trial's position)."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM answers WHERE participant = ?", (number,)).fetchone()[0])

    def submit(self, p: Participant, trials: list[Trial], trial_id: str, rating_left: Any, rating_right: Any,
               choice: Any) -> int:
        """Commit one answer of participant `p` (whose plan is `trials`); returns the next position.

        Raises SubmissionError: 403 before consent, 409 for a trial already answered or not the next
        one (or a finished study), 422 for ratings outside 1…7 or a choice that is not left/right."""
        if p.consented is None:
            raise SubmissionError(403, "give your consent on the first page before answering")
        for name, v in (("rating_left", rating_left), ("rating_right", rating_right)):
            if isinstance(v, bool) or not isinstance(v, int) or not LIKERT[0] <= v <= LIKERT[1]:
                raise SubmissionError(422, f"{name} = {v!r}: must be a whole number from 1 to 7")
        if choice not in CHOICES:
            raise SubmissionError(422, f"choice = {choice!r}: must be 'left' or 'right'")
        with self._lock:
            done = {r["trial"] for r in self._db.execute("SELECT trial FROM answers WHERE participant = ?",
                                                         (p.number,))}
            pos = len(done)
            if trial_id in done:
                raise SubmissionError(409, f"trial {trial_id!r} is already answered; answers cannot be changed")
            if pos >= len(trials):
                raise SubmissionError(409, "the study is finished; thank you")
            t = trials[pos]
            if trial_id != t.id:
                known = any(x.id == trial_id for x in trials)
                raise SubmissionError(409 if known else 404, f"trial {trial_id!r} is not your next trial "
                                      f"(that is trial {pos + 1} of {len(trials)}); reload the page")
            ok = attention_passed(t, rating_left, rating_right, choice)
            now = time.time()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (p.number, pos, t.id, t.kind, t.item, t.left, t.right, t.left_condition, t.right_condition,
                     rating_left, rating_right, choice, int(ok), now))
                if pos + 1 == len(trials):
                    self._db.execute("UPDATE participants SET finished = ? WHERE number = ?", (now, p.number))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return pos + 1

    def answers(self, number: int | None = None) -> list[dict[str, Any]]:
        """Answers as dicts of ANSWER_COLUMNS (one participant's, or everyone's), in order."""
        q = "SELECT * FROM answers" + (" WHERE participant = ?" if number is not None else "")
        with self._lock:
            rows = self._db.execute(q + " ORDER BY participant, position", (() if number is None else (number,)))
            return [{k: r[k] for k in ANSWER_COLUMNS} for r in rows.fetchall()]


SIMULATED = "simulated"  # the label of `ikmo study simulate`'s participants


def read_answers(path: str | Path) -> list[dict[str, Any]]:
    """Every answer of a responses file with its participant's label, read-only (the server may
    still be running)."""
    db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute("SELECT a.*, p.label FROM answers a JOIN participants p ON p.number = a.participant "
                          "ORDER BY a.participant, a.position").fetchall()
        return [{**{k: r[k] for k in ANSWER_COLUMNS}, "label": r["label"]} for r in rows]
    finally:
        db.close()
