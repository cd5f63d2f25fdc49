"""The studio: `ikmo serve`'s page at / for animators, and the routes it calls.

A thread is an `ikmo chat` conversation (`agents.run.Conversation`, LangGraph's SQLite
checkpointer) whose turns are runs of the server's queue: each turn writes into its own run folder
(`/v1/runs/ID/FILE` serves it) and is listed in the threads index (`ThreadIndex`, a table beside
the checkpoints), so a reload finds every thread, message, answer and motion again.

    GET  /                               the page (ikmo/web/static/studio/)
    GET  /v1/threads                     the threads, newest first
    POST /v1/threads                     a new thread → {"id"}
    GET  /v1/threads/ID                  its turns: message, photos, drawn path, reply (answer, notes, files, metrics)
    POST /v1/threads/ID/messages         {"text", "photos": [{"id", "time_s"}], "path_xz": [[x, z], ...] | null,
                                          "duration_s": null}
                                         → 202 {"job", "events"}: progress at /v1/jobs/JOB/events
    POST /v1/photos                      a photo's bytes (≤ 20 MB) → its reading: fitted skeleton overlay, fit check
    GET  /v1/photos/ID/FILE              the photo and its overlay
    GET  /v1/player/RUN                  what the 3D player draws: joints per frame of the chosen attempt and of
                                         every attempt, the target path, the keyframe poses, the files
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ikmo.agents.context import Context
from ikmo.agents.run import Conversation, is_postgres_url, open_database
from ikmo.agents.state import (
    MAX_IMAGES,
    MAX_PATH_EXTENT_M,
    MAX_PATH_POINTS,
    FloorPath,
    ImageRef,
    NonEmptyRequestText,
)
from ikmo.motion_model.constraints import MAX_DURATION_S
from ikmo.motion_model.errors import IKMoError, InputFileError, validation_message
from ikmo.server import MAX_BODY_BYTES, RUN_ID, MotionService, clear_failed_run, progress_event, run_reply, save_image
from ikmo.web import STATIC_DIR, THREE_IMPORT_MAP, ApiError, BadRequestError, read_body, read_json_object
from ikmo.web.jobs import Job, Reply

log = logging.getLogger(__name__)

MAX_PHOTO_BYTES = 20 * 1024 * 1024
PAGE = STATIC_DIR / "studio" / "index.html"
_THREAD_ID = re.compile(r"^t[0-9a-f]{12}$")
_PHOTO_ID = re.compile(r"^p[0-9a-f]{16}$")


class PhotoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=_PHOTO_ID.pattern)
    time_s: float | None = Field(default=None, ge=0, le=MAX_DURATION_S, allow_inf_nan=False)


class MessageIn(BaseModel):
    """The body of POST /v1/threads/ID/messages."""

    model_config = ConfigDict(extra="forbid")
    text: NonEmptyRequestText
    photos: list[PhotoIn] = Field(default_factory=list, max_length=MAX_IMAGES)
    path_xz: FloorPath | None = None
    duration_s: float | None = Field(default=None, gt=0, le=MAX_DURATION_S, allow_inf_nan=False)


class ThreadIndex:
    """The studio's list of threads and their turns, in the same database as the checkpoints (the
    SQLite file, or Postgres given IKMO_DATABASE_URL)."""

    def __init__(self, db: Path | str) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._conn = open_database(db)
        self._pg = is_postgres_url(db)
        self._exec("CREATE TABLE IF NOT EXISTS studio_threads (id TEXT PRIMARY KEY, title TEXT, "
                   "created DOUBLE PRECISION, updated DOUBLE PRECISION)")
        self._exec("CREATE TABLE IF NOT EXISTS studio_turns (thread_id TEXT, turn INTEGER, run_id TEXT, "
                   "message TEXT, request TEXT, status INTEGER, reply TEXT, created DOUBLE PRECISION, "
                   "PRIMARY KEY (thread_id, turn))")

    def _exec(self, sql: str, *params: Any, fetch: bool = False) -> list[Any]:
        """One statement, committed (`?` placeholders; `%s` for Postgres)."""
        if self._pg:
            sql = sql.replace("?", "%s")
        cur = self._conn.execute(sql, params)
        rows = list(cur.fetchall()) if fetch else []
        if not self._pg:
            self._conn.commit()
        return rows

    def new_thread(self) -> str:
        tid = "t" + uuid.uuid4().hex[:12]
        with self._lock:
            now = time.time()
            self._exec("INSERT INTO studio_threads VALUES (?, ?, ?, ?)", tid, "", now, now)
        return tid

    def exists(self, tid: str) -> bool:
        with self._lock:
            return bool(self._exec("SELECT 1 FROM studio_threads WHERE id = ?", tid, fetch=True))

    def threads(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._exec(
                "SELECT t.id, t.title, t.created, t.updated, COUNT(u.turn) FROM studio_threads t LEFT JOIN "
                "studio_turns u ON u.thread_id = t.id GROUP BY t.id, t.title, t.created, t.updated "
                "ORDER BY t.updated DESC", fetch=True)
        return [{"id": r[0], "title": r[1] or "(new thread)", "created": r[2], "updated": r[3], "turns": r[4]}
                for r in rows]

    def add_turn(self, tid: str, run_id: str, message: str, request: dict[str, Any]) -> int:
        with self._lock:
            n = int(self._exec("SELECT COUNT(*) FROM studio_turns WHERE thread_id = ?", tid, fetch=True)[0][0])
            self._exec("INSERT INTO studio_turns VALUES (?, ?, ?, ?, ?, NULL, NULL, ?)",
                       tid, n, run_id, message, json.dumps(request), time.time())
            self._exec("UPDATE studio_threads SET updated = ?, title = CASE WHEN title = '' THEN ? ELSE title END "
                       "WHERE id = ?", time.time(), message[:80], tid)
        return n

    def finish_turn(self, tid: str, turn: int, status: int, reply: dict[str, Any]) -> None:
        with self._lock:
            self._exec("UPDATE studio_turns SET status = ?, reply = ? WHERE thread_id = ? AND turn = ?",
                       status, json.dumps(reply), tid, turn)
            self._exec("UPDATE studio_threads SET updated = ? WHERE id = ?", time.time(), tid)

    def turns(self, tid: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._exec("SELECT turn, run_id, message, request, status, reply, created FROM studio_turns "
                              "WHERE thread_id = ? ORDER BY turn", tid, fetch=True)
        return [{"turn": r[0], "run_id": r[1], "message": r[2], "request": json.loads(r[3]), "status": r[4],
                 "reply": json.loads(r[5]) if r[5] else None, "created": r[6]} for r in rows]

    def close(self) -> None:
        self._conn.close()


class Studio:
    """The studio's routes on a `MotionService` (its queue, workers and run folders)."""

    def __init__(self, service: MotionService, db: Path | str | None = None) -> None:
        self.service = service
        url = os.environ.get("IKMO_DATABASE_URL", "")
        self.db: Path | str = url if db is None and is_postgres_url(url) else Path(
            db if db is not None else service.out_root / "studio.sqlite")
        if isinstance(self.db, Path):
            self.db.parent.mkdir(parents=True, exist_ok=True)
        self.index = ThreadIndex(self.db)
        self.photos = service.out_root / "studio_photos"
        self.photos.mkdir(parents=True, exist_ok=True)
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        if url and not is_postgres_url(url):
            log.warning("IKMO_DATABASE_URL is not a postgresql:// URL; the studio's threads stay in %s", self.db)

    def close(self) -> None:
        self.index.close()

    # ------------------------------------------------------------------ threads

    def say(self, tid: str, msg: MessageIn) -> Job:
        """Queue a message of thread `tid` as a run; 409 while the thread's previous message runs."""
        if not self.index.exists(tid):
            raise ApiError(HTTPStatus.NOT_FOUND, f"no thread {tid!r}; make one with POST /v1/threads")
        images = [ImageRef(path=str(self._photo_path(p.id)), time_s=p.time_s) for p in msg.photos]
        with self._busy_lock:
            if tid in self._busy:
                raise ApiError(HTTPStatus.CONFLICT, "this thread is still making your last message's motion; wait "
                                                    "for it (its progress is shown), then send the next")
            self._busy.add(tid)
        try:
            run_id, out = self.service.new_run()
            turn = self.index.add_turn(tid, run_id, msg.text, msg.model_dump(mode="json"))

            def work(ctx: Context, job: Job) -> Reply:
                try:
                    return self._turn(ctx, job, tid, turn, msg, images, out)
                finally:
                    with self._busy_lock:
                        self._busy.discard(tid)

            return self.service.pool.submit(run_id, work, kind="turn")
        except BaseException:
            with self._busy_lock:
                self._busy.discard(tid)
            raise

    def _turn(self, ctx: Context, job: Job, tid: str, turn: int, msg: MessageIn, images: list[ImageRef],
              out: Path) -> Reply:
        t0 = time.perf_counter()
        reply: dict[str, Any]
        chat = Conversation(self.db, tid, ctx, self.service.out_root)
        try:
            final = chat.say(msg.text, on_event=lambda ev: job.emit(progress_event(ev, out)), images=images,
                             path_xz=msg.path_xz, duration_s=msg.duration_s, out_dir=out)
            question = chat.pending_question()
        except IKMoError as e:
            clear_failed_run(out)
            status, reply = int(HTTPStatus.UNPROCESSABLE_ENTITY), {"id": job.id, "error": str(e)}
        else:
            seconds = round(time.perf_counter() - t0, 3)
            if question:  # the agents ask before they can make it: a question to answer, not a failure
                status, reply = int(HTTPStatus.OK), {"id": job.id, "status": "question", "question": question,
                                                     "notes": list(final.get("notes") or []), "seconds": seconds}
            else:
                status, reply = run_reply(job.id, final, out, seconds)
        finally:
            chat.close()
        reply = {**reply, "turn": turn}
        self.index.finish_turn(tid, turn, status, reply)
        return status, reply

    def _photo_path(self, pid: str) -> Path:
        found = sorted(self.photos.glob(f"{pid}.*"))
        found = [p for p in found if not p.name.endswith(("_overlay.png", ".json"))]
        if not _PHOTO_ID.match(pid) or not found:
            raise BadRequestError(f"no photo {pid!r} on this server; drop it on the page again")
        return found[0]

    # ------------------------------------------------------------------ photos

    def read_photo(self, data: bytes) -> Reply:
        """Store a photo and read it on a worker: the fitted skeleton over it and the fit check's verdict."""
        pid = "p" + hashlib.sha256(data).hexdigest()[:16]
        path = save_image(data, self.photos, pid)
        record = self.photos / f"{pid}.json"
        if record.is_file():  # the same photo again: its reading is known
            return HTTPStatus.OK, json.loads(record.read_text())
        job = self.service.pool.submit(pid + "-" + uuid.uuid4().hex[:4], lambda ctx, job: self._read(ctx, pid, path),
                                       kind="photo")
        job.wait()
        assert job.result is not None
        return job.result

    def _read(self, ctx: Context, pid: str, path: Path) -> Reply:
        from ikmo.agents.vision import offline_fit_check
        from ikmo.tools.overlay import save_overlay

        try:
            reading = ctx.tools.read_photo(path, 0.0, with_images=True)
        except IKMoError as e:
            path.unlink(missing_ok=True)
            return HTTPStatus.UNPROCESSABLE_ENTITY, {"error": f"{_first_line(e)} — try another photo"}
        kf = reading.keyframe
        verdict = offline_fit_check(kf, reading)
        save_overlay(self.photos / f"{pid}_overlay.png", reading.overlay())
        reply = {"id": pid, "url": f"/v1/photos/{pid}/{path.name}", "overlay": f"/v1/photos/{pid}/{pid}_overlay.png",
                 "verdict": verdict.model_dump(), "joints": kf.joints, "joint_mask": kf.joint_mask,
                 "fit_error_m": round(float(reading.fit.error_m), 4), "people": int(reading.landmarks.n_people)}
        (self.photos / f"{pid}.json").write_text(json.dumps(reply))
        return HTTPStatus.OK, reply

    # ------------------------------------------------------------------ the player

    def player(self, run_id: str) -> dict[str, Any]:
        """What the 3D player draws of a finished run (arrays as nested lists, metres, 20 fps)."""
        if not RUN_ID.match(run_id) or not (self.service.out_root / run_id / "joints.npy").is_file():
            raise ApiError(HTTPStatus.NOT_FOUND, f"no motion in run {run_id!r} (a run that failed has none)")
        return player_data(self.service.out_root / run_id, run_id)

    # ------------------------------------------------------------------ routes

    def router(self) -> APIRouter:
        router = APIRouter(tags=["studio"])

        @router.get("/", response_class=HTMLResponse, include_in_schema=False)
        def page() -> HTMLResponse:
            html = PAGE.read_text().replace("{{IMPORT_MAP}}", json.dumps(THREE_IMPORT_MAP))
            return HTMLResponse(html)

        @router.get("/v1/threads", summary="The studio's threads, newest first")
        def threads() -> dict[str, Any]:
            return {"threads": self.index.threads()}

        @router.post("/v1/threads", status_code=HTTPStatus.CREATED, summary="A new thread")
        def new_thread() -> dict[str, Any]:
            return {"id": self.index.new_thread()}

        @router.get("/v1/threads/{tid}", summary="A thread's turns")
        def thread(tid: str) -> dict[str, Any]:
            if not _THREAD_ID.match(tid) or not self.index.exists(tid):
                raise ApiError(HTTPStatus.NOT_FOUND, f"no thread {tid!r}")
            return {"id": tid, "turns": self.index.turns(tid)}

        @router.post("/v1/threads/{tid}/messages", status_code=HTTPStatus.ACCEPTED,
                     summary="A message (request or follow-up) → a queued run; progress at /v1/jobs/JOB/events")
        async def message(tid: str, request: Request) -> dict[str, Any]:
            body = await read_json_object(request, MAX_BODY_BYTES)
            try:
                msg = MessageIn.model_validate(body)
            except ValidationError as e:
                raise BadRequestError("invalid message: " + validation_message(e, allowed={
                    "path_xz": f"2 to {MAX_PATH_POINTS} floor points within {MAX_PATH_EXTENT_M:g} m"})) from None
            job = await asyncio.to_thread(self.say, tid, msg)
            return {"job": job.id, "events": f"/v1/jobs/{job.id}/events", "queue": self.service.pool.stats()}

        @router.post("/v1/photos", summary="A photo's bytes → its fitted skeleton and fit check")
        async def photo(request: Request) -> Any:
            size = request.headers.get("content-length", "")
            if size.isdigit() and int(size) > MAX_PHOTO_BYTES:
                raise BadRequestError(f"the photo is {int(size) / 2**20:.1f} MB; photos up to "
                                      f"{MAX_PHOTO_BYTES // 2**20} MB are read — use a smaller one")
            data = await read_body(request, MAX_PHOTO_BYTES, what="a photo")
            status, reply = await asyncio.to_thread(self.read_photo, data)
            if status >= 400:
                raise ApiError(status, reply["error"])
            return reply

        @router.get("/v1/photos/{pid}/{name}", summary="A photo or its overlay")
        def photo_file(pid: str, name: str) -> FileResponse:
            path = self.photos / name
            if not _PHOTO_ID.match(pid) or not name.startswith(pid) or "/" in name or not path.is_file():
                raise ApiError(HTTPStatus.NOT_FOUND, f"no file {name!r} of photo {pid!r}")
            return FileResponse(path)

        @router.get("/v1/player/{run_id}", summary="The 3D player's data of a finished run")
        def player(run_id: str) -> dict[str, Any]:
            return self.player(run_id)

        return router


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _joints(path: Path) -> list[Any]:
    """(T, 22, 3) joints → nested lists rounded to mm (user files are never unpickled)."""
    arr = np.load(path, allow_pickle=False)
    if arr.ndim != 3 or arr.shape[1:] != (22, 3):
        raise InputFileError(f"{path.name} holds {arr.shape}, not (T, 22, 3) joints")
    return np.round(arr.astype(np.float64), 3).tolist()


def player_data(run: Path, run_id: str) -> dict[str, Any]:
    """A run folder → the player's JSON: `joints` (T, 22, 3) of the chosen attempt, `attempts` (each
    attempt's joints, metrics, problems, whether chosen), `target` (the pelvis path, (T, 3), and its
    mask), `keyframes` (time, root-relative (22, 3) joints, mask), `fps`, `files`, `metrics` (result.json's)."""
    spec = json.loads((run / "spec.json").read_text()) if (run / "spec.json").is_file() else {}
    result = json.loads((run / "result.json").read_text()) if (run / "result.json").is_file() else {}
    traj = spec.get("trajectory") or {}
    joints = np.load(run / "joints.npy", allow_pickle=False)
    attempts = []
    for rec in result.get("attempts") or []:
        path = run / "attempts" / f"{int(rec['attempt']):02d}" / "joints.npy"
        if path.is_file():  # the chosen attempt is the one whose joints were promoted
            attempts.append({"attempt": int(rec["attempt"]), "joints": _joints(path), "change": rec.get("change"),
                             "metrics": _finite(rec.get("metrics")), "problems": rec.get("problems") or [],
                             "chosen": bool(np.array_equal(np.load(path, allow_pickle=False), joints))})
    files = {p.name: f"/v1/runs/{run_id}/{p.name}" for p in sorted(run.iterdir()) if p.is_file()}
    return {"id": run_id, "fps": spec.get("fps", 20.0), "joints": _joints(run / "joints.npy"),
            "target": {"positions": traj.get("positions"), "mask": traj.get("mask")},
            "keyframes": [{"time_s": k["time_s"], "joints": k["joints"], "joint_mask": k.get("joint_mask"),
                           "source": k.get("source")} for k in spec.get("keyframes") or []],
            "attempts": attempts, "files": files, "metrics": _finite(result.get("metrics")),
            "description": (spec.get("description") or {}).get("text")}


def _finite(d: Any) -> dict[str, Any]:
    """The numbers of a report (JSON has no NaN)."""
    if not isinstance(d, dict):
        return {}
    return {k: v for k, v in d.items() if isinstance(v, int | float) and v == v and abs(v) != float("inf")}
