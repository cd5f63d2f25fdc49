"""`ikmo serve`: the agent graph behind a local HTTP API (FastAPI on uvicorn, `ikmo.web`), with
the model loaded once, a request queue in front of a bounded number of model workers, and each
request's progress streamed as server-sent events. The studio page (`ikmo.studio`) is served by
the same app.

    POST /v1/generate   {"text": "...", "keyframes": [{"image_base64": "...", "time_s": 2.0}],
                         "duration_s": 6, "seed": 0}
                        → 200 {"id", "status": "ok", "answer", "files": {name: url}, "dir", "metrics",
                               "notes", "seconds"}
                        → 400 a request that cannot be read (nothing is kept), 422 one that cannot be
                          made (the answer says why; only the run's transcript and plan are kept),
                          503 the queue is full, 504 the run took longer than the time limit (it goes
                          on; GET /v1/jobs/ID says when it is done), 500 a bug
    POST /v1/jobs       the same body → 202 {"id", "events": "/v1/jobs/ID/events", ...} at once
    GET  /v1/jobs/ID    a job's state (and its reply once done)
    GET  /v1/jobs/ID/events   server-sent events: queued, started, describe, keyframe_pose (each
                        photo), trajectory, validate, generate (each sampling step), critique,
                        respond, export, then `done` with the reply
    GET  /v1/runs/ID/FILE   a file of a finished run (motion.bvh, joints.npy, preview.mp4, ...)
    GET  /v1/health     {"status": "ok", "provider", "weights", "requests", "queue": {...}, "max_duration_s"}
    GET  /docs          the OpenAPI page

A keyframe is an image sent inline (`image_base64`) or, when the server listens on a loopback
address only, a `path` on this machine. Every run writes into its own folder under the output
root, and nothing else. A client gets `timeout_s` (30 s by default) to send each request and
between the requests of a kept-alive connection (`ikmo.web.protocol`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ikmo.agents.context import Context
from ikmo.agents.inputs import check_image_path
from ikmo.agents.run import run_request
from ikmo.agents.state import MAX_IMAGES, MAX_TEXT_CHARS, ImageRef, MotionRequest, NonEmptyRequestText
from ikmo.motion_model.constraints import MAX_DURATION_S
from ikmo.motion_model.errors import IKMoError, InputFileError, validation_message
from ikmo.motion_model.limits import MAX_SEED
from ikmo.web import (
    DEFAULT_TIMEOUT_S,
    ApiError,
    BadRequestError,
    JSONReply,
    WebServer,
    create_app,
    parse_json_object,
    read_json_object,
)
from ikmo.web.jobs import Job, Reply, WorkerPool

__all__ = ["DEFAULT_TIMEOUT_S", "KEPT_ON_FAILURE", "MAX_BODY_BYTES", "BadRequestError", "GenerateIn", "KeyframeIn",
           "MotionService", "api_router", "build_app", "is_loopback", "make_server", "parse_body"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024  # 8 photos of a few MB each, base64-encoded
DEFAULT_TIME_LIMIT_S = 600.0  # a run's wait for POST /v1/generate's answer, queue included
DEFAULT_MAX_QUEUE = 64
# What a 422 keeps of its run folder: the transcript it promises and the agents' plan; the rest
# (inline photos, attempts) goes.
KEPT_ON_FAILURE = ("transcript.json", "transcript.md", "agent_spec.json")
RUN_ID = re.compile(r"^[0-9]{4,}-[0-9a-f]{6}$")
IMAGE_MAGIC = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg", b"RIFF": ".webp", b"GIF8": ".gif", b"BM": ".bmp"}
USAGE = "use GET /v1/health, GET /v1/runs/ID/FILE or POST /v1/generate (the API: GET /docs)"

parse_body = parse_json_object  # the body rules of `ikmo serve`, shared by every app of the web layer


class KeyframeIn(BaseModel):
    """One keyframe photo of a request: inline (base64) or a path on the server's machine."""

    model_config = ConfigDict(extra="forbid")
    image_base64: str | None = None
    path: str | None = None
    time_s: float | None = Field(default=None, ge=0, le=MAX_DURATION_S, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_source(self) -> KeyframeIn:
        if (self.image_base64 is None) == (self.path is None):
            raise ValueError("give exactly one of image_base64 or path")
        return self


class GenerateIn(BaseModel):
    """The body of POST /v1/generate."""

    model_config = ConfigDict(extra="forbid")
    text: NonEmptyRequestText
    keyframes: list[KeyframeIn] = Field(default_factory=list, max_length=MAX_IMAGES)
    duration_s: float | None = Field(default=None, gt=0, le=MAX_DURATION_S, allow_inf_nan=False)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)


class MotionService:
    """Runs requests through the graph on a pool of workers, each with its own loaded context.

    ctx: the graph's context (its motion model loaded), or one per worker (`--workers N`); out_root:
    each run writes into out_root/ID; allow_paths: keyframes may name files on this machine (only
    for a loopback-only server); max_queue: requests that may wait for a worker (more: 503);
    time_limit_s: how long POST /v1/generate waits for its run (longer: 504, the run goes on).
    """

    def __init__(self, ctx: Context | Sequence[Context], out_root: Path, allow_paths: bool = True,
                 max_queue: int = DEFAULT_MAX_QUEUE, time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> None:
        contexts = [ctx] if isinstance(ctx, Context) else list(ctx)
        self.ctx, self.out_root, self.allow_paths = contexts[0], Path(out_root).resolve(), allow_paths
        self.time_limit_s = time_limit_s
        self.out_root.mkdir(parents=True, exist_ok=True)
        self.pool: WorkerPool[Context] = WorkerPool(contexts, max_queue=max_queue, name="motion")
        self._lock = threading.Lock()
        self.requests = 0

    def new_run(self) -> tuple[str, Path]:
        """A fresh run id and its (created) folder under the output root."""
        with self._lock:
            self.requests += 1
            run_id = f"{self.requests:04d}-{uuid.uuid4().hex[:6]}"
        out = self.out_root / run_id
        out.mkdir(parents=True)
        return run_id, out

    def submit(self, body: dict[str, Any]) -> Job:
        """Check a request and queue it; BadRequestError for a body that cannot be read (nothing kept),
        ApiError 503 when the queue is full."""
        try:
            req_in = GenerateIn.model_validate(body)
        except ValidationError as e:
            raise BadRequestError(_validation_message(e)) from e
        run_id, out = self.new_run()
        try:
            images = [self._image(k, out, i) for i, k in enumerate(req_in.keyframes)]
            seed = req_in.seed if req_in.seed is not None else self.ctx.settings.seed
            req = MotionRequest(text=req_in.text, images=images, duration_s=req_in.duration_s, seed=seed,
                                out_dir=str(out))
            return self.pool.submit(run_id, lambda ctx, job: self._run(ctx, job, req, out), kind="generate",
                                    on_refused=lambda: shutil.rmtree(out, ignore_errors=True))
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)  # a request that cannot be read leaves nothing
            raise

    def generate(self, body: dict[str, Any], timeout_s: float | None = None) -> Reply:
        """One request → (status, JSON reply), waiting for its run (at most `timeout_s`: then 504)."""
        job = self.submit(body)
        return job.result if job.wait(timeout_s) and job.result is not None else timeout_reply(job, timeout_s)

    def _run(self, ctx: Context, job: Job, req: MotionRequest, out: Path) -> Reply:
        t0 = time.perf_counter()
        try:
            final = run_request(req, ctx, on_event=lambda ev: job.emit(progress_event(ev, out)))
        except IKMoError as e:
            clear_failed_run(out)
            return HTTPStatus.UNPROCESSABLE_ENTITY, {"id": job.id, "error": str(e)}
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
        return run_reply(job.id, final, out, round(time.perf_counter() - t0, 3))

    def run_file(self, run_id: str, name: str) -> Path:
        """A file of a finished run; InputFileError when there is none (never a path outside the run)."""
        path = self.out_root / run_id / name
        if not RUN_ID.match(run_id) or "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
            raise InputFileError(f"no file {name!r} in run {run_id!r}")
        return path

    def _image(self, k: KeyframeIn, out: Path, i: int) -> ImageRef:
        if k.path is not None:
            if not self.allow_paths:
                raise BadRequestError("this server does not read paths (it listens beyond this machine); send the "
                                      "photo as image_base64")
            try:
                path = check_image_path(k.path, what=f"keyframe {i + 1}: path")
            except InputFileError as e:
                raise BadRequestError(str(e)) from None
            return ImageRef(path=str(path), time_s=k.time_s)
        assert k.image_base64 is not None
        try:
            data = base64.b64decode(k.image_base64, validate=True)
        except (binascii.Error, ValueError) as e:
            raise BadRequestError(f"keyframe {i + 1}: image_base64 is not valid base64 ({e})") from e
        return ImageRef(path=str(save_image(data, out / "inputs", f"keyframe_{i + 1:02d}")), time_s=k.time_s)

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "provider": self.ctx.settings.provider, "weights": self.ctx.tools.describe()["weights"],
                "requests": self.requests, "queue": self.pool.stats(), "max_duration_s": MAX_DURATION_S}

    def close(self) -> None:
        self.pool.close()


def timeout_reply(job: Job, limit_s: float | None) -> Reply:
    """504 for a run still going after the time limit: where to find it when it is done."""
    return HTTPStatus.GATEWAY_TIMEOUT, {
        "id": job.id, "status": job.state, "job": f"/v1/jobs/{job.id}",
        "error": f"the run took longer than {limit_s or 0:g} s; it goes on: GET /v1/jobs/{job.id} says when its "
                 "files are ready"}


def save_image(data: bytes, folder: Path, stem: str) -> Path:
    """Write photo bytes as folder/stem.EXT, EXT from the bytes' signature (.img when unknown)."""
    ext = next((e for magic, e in IMAGE_MAGIC.items() if data.startswith(magic)), ".img")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}{ext}"
    path.write_bytes(data)
    return path


def progress_event(ev: dict[str, Any], out: Path) -> dict[str, Any]:
    """A graph custom event for a client: paths inside the run folder made relative to it."""
    clean = dict(ev)
    if isinstance(clean.get("image"), str):
        p = Path(clean["image"])
        clean["image"] = str(p.relative_to(out)) if p.is_relative_to(out) else p.name
    return clean


def run_reply(run_id: str, final: dict[str, Any], out: Path, seconds: float) -> Reply:
    """A finished graph run → (200 with its answer, files and metrics | 422 with why it cannot be made);
    a failed run keeps only its transcript and plan (`clear_failed_run`)."""
    result = final.get("result")
    failed = final.get("status") != "ok" or result is None
    if failed:
        clear_failed_run(out)
    reply: dict[str, Any] = {"id": run_id, "status": final.get("status"), "answer": final.get("answer"),
                             "dir": str(out), "notes": list(final.get("notes") or []), "seconds": seconds}
    files = {p.name: p for p in out.iterdir() if p.is_file()} if out.is_dir() else {}
    reply["files"] = {name: f"/v1/runs/{run_id}/{name}" for name in sorted(files)}
    if failed or result is None:
        reply["error"] = str(final.get("error") or final.get("answer") or "the run did not finish")
        log.info("run %s failed in %.2fs: %s", run_id, seconds, reply["error"])
        return HTTPStatus.UNPROCESSABLE_ENTITY, reply
    reply["metrics"] = {k: v for k, v in result.metrics.items() if v == v}  # JSON has no NaN
    log.info("run %s: %s (%.2fs)", run_id, result.spec.description.text, seconds)
    return HTTPStatus.OK, reply


def _validation_message(e: ValidationError) -> str:
    return "invalid request: " + validation_message(e, allowed={
        "duration_s": f"0 < seconds <= {MAX_DURATION_S:g}", "seed": f"0 ... {MAX_SEED}",
        "text": f"1 to {MAX_TEXT_CHARS} characters", "keyframes": f"at most {MAX_IMAGES} photos"})


def clear_failed_run(out: Path) -> None:
    """Remove what a failed run wrote except its transcript and plan (`KEPT_ON_FAILURE`); the folder
    goes too when nothing is kept."""
    if not out.is_dir():
        return
    for p in out.iterdir():
        if p.name in KEPT_ON_FAILURE and p.is_file():
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    if not any(out.iterdir()):
        out.rmdir()


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback one (127.0.0.0/8, ::1, localhost)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return False
    try:
        return bool(infos) and all(ipaddress.ip_address(str(i[4][0]).split("%")[0]).is_loopback for i in infos)
    except ValueError:
        return False


# --------------------------------------------------------------------------- the HTTP API


def json_reply(reply: Reply) -> JSONReply:
    status, payload = reply
    return JSONReply(payload, status_code=status)


async def job_events(job: Job, after: int = 0) -> AsyncIterator[ServerSentEvent]:
    """A job's progress as server-sent events (id = the event's number, so a reconnecting
    EventSource resumes with Last-Event-ID), then `done` with (status, reply)."""
    n = after
    while True:
        events, done = job.events_after(n)
        for ev in events:
            n += 1
            yield ServerSentEvent(data=ev, event="progress", id=str(n))
        if done and len(job.events) <= n:
            assert job.result is not None
            status, reply = job.result
            yield ServerSentEvent(data={"status": status, "reply": reply}, event="done", id=str(n + 1))
            return
        await asyncio.sleep(0.05)


def api_router(service: MotionService) -> APIRouter:
    """The /v1 routes of `ikmo serve` on `service`."""
    router = APIRouter(prefix="/v1", tags=["motion"])

    @router.post("/generate", summary="Words (+ photos) → a motion; waits for the run")
    async def generate(request: Request) -> JSONReply:
        body = await read_json_object(request, MAX_BODY_BYTES)
        job = await asyncio.to_thread(service.submit, body)
        if await asyncio.to_thread(job.wait, service.time_limit_s) and job.result is not None:
            return json_reply(job.result)
        return json_reply(timeout_reply(job, service.time_limit_s))

    @router.post("/jobs", status_code=HTTPStatus.ACCEPTED, summary="Queue a request; follow it with /events")
    async def submit(request: Request) -> dict[str, Any]:
        job = await asyncio.to_thread(service.submit, await read_json_object(request, MAX_BODY_BYTES))
        return {**job.summary(), "events": f"/v1/jobs/{job.id}/events", "queue": service.pool.stats()}

    @router.get("/jobs/{job_id}", summary="A job's state, and its reply once done")
    def job_state(job_id: str) -> dict[str, Any]:
        return _job(service, job_id).summary()

    @router.get("/jobs/{job_id}/events", response_class=EventSourceResponse,
                summary="A job's progress as server-sent events, then `done` with its reply")
    async def events(job_id: str, request: Request) -> AsyncIterator[ServerSentEvent]:
        job = _job(service, job_id)
        last = request.headers.get("last-event-id", "")
        async for ev in job_events(job, int(last) if last.isdigit() else 0):
            yield ev

    @router.get("/runs/{rest:path}", summary="A file of a finished run: /v1/runs/ID/FILE")
    def run_file(rest: str, request: Request) -> FileResponse:
        # Split what the client sent (escapes kept), so "a/b" and "..%2Fx" are told apart.
        parts = request.scope.get("raw_path", b"").decode("latin-1").strip("/").split("/")
        if len(parts) != 4:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no such endpoint: GET {request.url.path}")
        try:
            path = service.run_file(unquote(parts[2]), unquote(parts[3]))
        except InputFileError as e:
            raise ApiError(HTTPStatus.NOT_FOUND, str(e)) from None
        return FileResponse(path, media_type="application/octet-stream", filename=path.name)

    @router.get("/health", summary="Provider, weights, requests so far and the queue")
    def health() -> dict[str, Any]:
        return service.health()

    return router


def _job(service: MotionService, job_id: str) -> Job:
    job = service.pool.get(job_id)
    if job is None:
        raise ApiError(HTTPStatus.NOT_FOUND, f"no job {job_id!r} (finished jobs are remembered until the server "
                                             "restarts; their files stay under /v1/runs/ID/)")
    return job


def build_app(service: MotionService, studio: Any = None) -> FastAPI:
    """The app of `ikmo serve`: the /v1 API on `service`, plus the studio's routes when given
    (`ikmo.studio.Studio`)."""
    app = create_app("IKMo", usage=USAGE, description="Words and photos in, 3D human motion out (`ikmo serve`).")
    app.include_router(api_router(service))
    if studio is not None:
        app.include_router(studio.router())
    return app


def make_server(service: MotionService, host: str = "127.0.0.1", port: int = 8765,
                timeout_s: float = DEFAULT_TIMEOUT_S, studio: Any = None, sock: socket.socket | None = None
                ) -> WebServer:
    """The HTTP server (not started: call `serve_forever`, `shutdown` to stop); port 0 picks a free one,
    `sock` a socket bound before (`ikmo.web.bind_socket`: `ikmo serve` binds before it loads the model)."""
    return WebServer(build_app(service, studio), host, port, timeout_s=timeout_s, max_body_bytes=MAX_BODY_BYTES,
                     sock=sock)
