"""`ikmo study serve DIR`: the built study as a local web app for participants, on the shared web
layer (`ikmo.web`: app factory, error contract, runner). The pages are static files
(`ikmo/web/static/study/`); everything a page shows comes from the JSON API below.

Participant (the personal token in the path is the only key; another token's answers are never
read or written):

    GET  /p/{token}                         the study page (consent, instructions, trials, thanks)
    GET  /api/p/{token}                     where the participant stands: consent, position, total,
                                            the current trial (text, photo and video URLs, no condition names)
    POST /api/p/{token}/consent             {"consent": true}
    POST /api/p/{token}/answer              {"position": k, "rating_left": 1-7, "rating_right": 1-7,
                                             "choice": "left"|"right", "played": {"left": true, "right": true}}
    GET  /api/p/{token}/video/{k}/{side}    the trial's videos (only trials up to the current one)
    GET  /api/p/{token}/photo/{k}/{j}       its photos

Admin (its own token, kept in the responses file and logged at start):

    GET  /admin/{token}                     progress of every participant, their links
    GET  /admin/{token}/answers.csv         every answer
    POST /admin/{token}/participants        {"n": 3, "label": "..."} → new links

Every answer is committed to SQLite (WAL, synchronous=FULL) before the reply (`eval.study.responses`);
a bad or replayed submission is a 4xx with one line and changes nothing.
"""

from __future__ import annotations

import csv
import html
import io
import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from ikmo.eval.study.definition import Study
from ikmo.eval.study.design import Trial, plan
from ikmo.eval.study.responses import ANSWER_COLUMNS, RESPONSES, Participant, Store, SubmissionError
from ikmo.web import STATIC_DIR, ApiError, create_app, read_json_object

log = logging.getLogger(__name__)

PAGE = STATIC_DIR / "study" / "study.html"
MAX_BODY = 4096
SIDES = ("left", "right")


class StudyApp:
    """The served study: its plan per participant, its files, its answers."""

    def __init__(self, folder: Path, study: Study, manifest: dict[str, Any], store: Store) -> None:
        self.folder = folder.resolve()
        self.study = study
        self.manifest = manifest
        self.store = store
        self.videos = {s["id"]: self.folder / s["files"]["video"] for s in manifest["stimuli"]}
        self.photos: dict[str, list[str]] = manifest.get("photos", {})
        self._plans: dict[int, list[Trial]] = {}

    def plan(self, number: int) -> list[Trial]:
        if number not in self._plans:
            self._plans[number] = plan(self.study, number)
        return self._plans[number]

    def participant(self, token: str) -> Participant:
        p = self.store.by_token(token)
        if p is None:
            raise ApiError(404, "no such participant link: check the link you were given")
        return p

    def admin(self, token: str) -> None:
        if token != self.store.admin_token():
            raise ApiError(403, "wrong admin token: use the admin link `ikmo study serve` logged")

    def trial_view(self, token: str, p: Participant, k: int) -> dict[str, Any]:
        """Trial k as the page shows it: the request, photos, videos; never the condition names."""
        t = self.plan(p.number)[k]
        item = self.study.item(t.item)
        base = f"/api/p/{token}"
        return {"position": k, "text": item.text, "duration_s": self.study.duration(item),
                "photos": [{"url": f"{base}/photo/{k}/{j}", "time_s": ph.time_s} for j, ph in enumerate(item.photos)],
                "videos": {side: f"{base}/video/{k}/{side}" for side in SIDES}}

    def state(self, token: str) -> dict[str, Any]:
        p = self.participant(token)
        trials = self.plan(p.number)
        pos = self.store.answered(p.number)
        return {"consented": p.consented is not None, "position": pos, "total": len(trials),
                "finished": pos >= len(trials),
                "trial": self.trial_view(token, p, pos) if p.consented is not None and pos < len(trials) else None}

    def visible(self, token: str, k: int) -> tuple[Participant, Trial]:
        """Trial k of the participant, if they may see it (consented, not beyond their current trial)."""
        p = self.participant(token)
        trials = self.plan(p.number)
        if p.consented is None or not 0 <= k < len(trials) or k > self.store.answered(p.number):
            raise ApiError(404, f"no trial {k} for this link yet")
        return p, trials[k]


def _bool_flags(body: dict[str, Any]) -> None:
    played = body.get("played")
    if not isinstance(played, dict) or any(played.get(s) is not True for s in SIDES):
        raise ApiError(422, "played: both videos must be watched to the end before answering "
                            '({"left": true, "right": true})')


def router(sa: StudyApp) -> APIRouter:
    r = APIRouter()

    @r.get("/p/{token}", response_class=HTMLResponse)
    def page(token: str) -> HTMLResponse:
        sa.participant(token)
        return HTMLResponse(PAGE.read_text(encoding="utf-8").replace("{{title}}", html.escape(sa.study.name)))

    @r.get("/api/p/{token}")
    def state(token: str) -> dict[str, Any]:
        return sa.state(token)

    @r.post("/api/p/{token}/consent")
    async def consent(token: str, request: Request) -> dict[str, Any]:
        body = await read_json_object(request, MAX_BODY)
        p = sa.participant(token)
        if body.get("consent") is not True:
            raise ApiError(422, 'consent: send {"consent": true} to take part')
        await run_in_threadpool(sa.store.consent, p.number)  # a committed write: off the event loop
        return sa.state(token)

    @r.post("/api/p/{token}/answer")
    async def answer(token: str, request: Request) -> dict[str, Any]:
        body = await read_json_object(request, MAX_BODY)
        p = sa.participant(token)
        unknown = set(body) - {"position", "rating_left", "rating_right", "choice", "played"}
        if unknown:
            raise ApiError(422, f"unknown field(s) {', '.join(sorted(unknown))}")
        k = body.get("position")
        trials = sa.plan(p.number)
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(trials):
            raise ApiError(422, f"position = {k!r}: must be a trial number from 0 to {len(trials) - 1}")
        _bool_flags(body)
        try:  # one committed transaction (fsync): off the event loop
            await run_in_threadpool(sa.store.submit, p, trials, trials[k].id, body.get("rating_left"),
                                    body.get("rating_right"), body.get("choice"))
        except SubmissionError as e:
            raise ApiError(e.status, str(e)) from None
        return sa.state(token)

    @r.get("/api/p/{token}/video/{k}/{side}")
    def video(token: str, k: int, side: str) -> FileResponse:
        if side not in SIDES:
            raise ApiError(404, "a video is left or right")
        _, t = sa.visible(token, k)
        return FileResponse(sa.videos[t.left if side == "left" else t.right], media_type="video/mp4",
                            headers={"Cache-Control": "private, max-age=3600"})

    @r.get("/api/p/{token}/photo/{k}/{j}")
    def photo(token: str, k: int, j: int) -> FileResponse:
        _, t = sa.visible(token, k)
        photos = sa.photos.get(t.item, [])
        if not 0 <= j < len(photos):
            raise ApiError(404, f"no photo {j} in this trial")
        return FileResponse(sa.folder / photos[j])

    @r.get("/admin/{token}", response_class=HTMLResponse)
    def admin(token: str, request: Request) -> HTMLResponse:
        sa.admin(token)
        return HTMLResponse(admin_page(sa, str(request.base_url).rstrip("/"), token))

    @r.get("/admin/{token}/answers.csv")
    def answers_csv(token: str) -> Response:
        sa.admin(token)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=ANSWER_COLUMNS)
        w.writeheader()
        w.writerows(sa.store.answers())
        return Response(buf.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{sa.study.name}_answers.csv"'})

    @r.post("/admin/{token}/participants")
    async def add(token: str, request: Request) -> dict[str, Any]:
        sa.admin(token)
        body = await read_json_object(request, MAX_BODY)
        n, label = body.get("n", 1), body.get("label", "")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1000:
            raise ApiError(422, f"n = {n!r}: must be a whole number from 1 to 1000")
        if not isinstance(label, str) or len(label) > 64:
            raise ApiError(422, "label: a text of at most 64 characters")
        new = sa.store.add_participants(n, label)
        return {"participants": [{"number": p.number, "link": f"/p/{p.token}"} for p in new]}

    return r


def admin_page(sa: StudyApp, base: str, token: str) -> str:
    """Progress of every participant (answered / total, consent, finish), their links, the CSV link."""
    rows = []
    done = 0
    for p in sa.store.participants():
        n, total = sa.store.answered(p.number), len(sa.plan(p.number))
        done += n >= total
        link = f"{base}/p/{p.token}"
        rows.append(f"<tr><td>{p.number}</td><td>{html.escape(p.label)}</td><td>{'yes' if p.consented else 'no'}</td>"
                    f"<td><progress value='{n}' max='{total}'></progress> {n}/{total}</td>"
                    f"<td><a href='{html.escape(link)}'>{html.escape(link)}</a></td></tr>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(sa.study.name)} — admin</title>"
            "<link rel='stylesheet' href='/static/study/study.css'></head><body><main class='admin'>"
            f"<h1>{html.escape(sa.study.name)}: progress</h1><p>{done} of {len(rows)} participants finished. "
            f"<a id='csv' href='/admin/{html.escape(token)}/answers.csv'>Download every answer (CSV)</a></p>"
            "<table><tr><th>#</th><th>label</th><th>consent</th><th>answered</th><th>personal link</th></tr>"
            + "".join(rows) + "</table></main></body></html>")


def make_app(folder: Path, study: Study, manifest: dict[str, Any], store: Store | None = None) -> FastAPI:
    """The study's FastAPI app over `folder` (its responses file opened, participants made)."""
    store = store or Store(folder / RESPONSES)
    store.ensure_participants(study.participants)
    sa = StudyApp(folder, study, manifest, store)
    app = create_app(f"IKMo study {study.name}", usage="open your personal link /p/TOKEN")
    app.include_router(router(sa))
    app.state.study = sa
    return app
