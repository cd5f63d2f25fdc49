"""`ikmo serve`: the agent graph behind a local HTTP API, with the model loaded once.

For a game engine, a DCC plug-in or a script that asks for many motions: each request pays the
agents and the sampling (about a second on 2 cores), not the imports and the model load of a new
`ikmo generate` process. Standard library only (`http.server`): JSON in, JSON out, files by URL.

    POST /v1/generate   {"text": "...", "keyframes": [{"image_base64": "...", "time_s": 2.0}],
                         "duration_s": 6, "seed": 0}
                        → 200 {"id", "status": "ok", "answer", "files": {name: url}, "dir", "metrics",
                               "notes", "seconds"}
                        → 400 a request that cannot be read (nothing is kept), 422 one that cannot be
                          made (the answer says why; only the run's transcript and plan are kept), 500 a bug
    GET  /v1/runs/ID/FILE   a file of a finished run (motion.bvh, joints.npy, preview.mp4, ...)
    GET  /v1/health         {"status": "ok", "provider", "weights", "requests"}

A keyframe is an image sent inline (`image_base64`) or, when the server listens on a loopback
address only, a `path` on this machine. Requests are served one at a time (the model runs on the
CPU cores anyway); every run writes into its own folder under the output root, and nothing else.
A client gets `timeout_s` (30 s by default) to send each request and between the requests of a
kept-alive connection; a half-sent request then loses its connection instead of holding a thread.
"""

from __future__ import annotations

import base64
import binascii
import errno
import ipaddress
import json
import logging
import re
import shutil
import socket
import sys
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ikmo.agents.context import Context
from ikmo.agents.inputs import check_image_path
from ikmo.agents.run import run_request
from ikmo.agents.state import MAX_IMAGES, MAX_TEXT_CHARS, ImageRef, MotionRequest, NonEmptyRequestText
from ikmo.motion_model.constraints import MAX_DURATION_S
from ikmo.motion_model.errors import IKMoError, InputFileError, UsageError, validation_message
from ikmo.motion_model.limits import MAX_SEED

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024  # 8 photos of a few MB each, base64-encoded
DEFAULT_TIMEOUT_S = 30.0  # to send a request, or to stay idle between two on one connection
# What a 422 keeps of its run folder: the transcript it promises and the agents' plan; the rest
# (inline photos, attempts) goes.
KEPT_ON_FAILURE = ("transcript.json", "transcript.md", "agent_spec.json")
_RUN_ID = re.compile(r"^[0-9]{4}-[0-9a-f]{6}$")
_IMAGE_MAGIC = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg", b"RIFF": ".webp", b"GIF8": ".gif", b"BM": ".bmp"}


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


class BadRequestError(Exception):
    """A request that cannot be read: 400 with this message."""


class MotionService:
    """Runs requests through the graph with one loaded context; thread-safe (one run at a time).

    ctx: the graph's context, its motion model loaded; out_root: each run writes into out_root/ID;
    allow_paths: keyframes may name files on this machine (only for a loopback-only server).
    """

    def __init__(self, ctx: Context, out_root: Path, allow_paths: bool = True) -> None:
        self.ctx, self.out_root, self.allow_paths = ctx, Path(out_root).resolve(), allow_paths
        self.out_root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.requests = 0

    def generate(self, body: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        """One request → (status, JSON reply). Raises BadRequestError for a body that cannot be read."""
        try:
            req_in = GenerateIn.model_validate(body)
        except ValidationError as e:
            raise BadRequestError(_validation_message(e)) from e
        with self._lock:
            self.requests += 1
            run_id = f"{self.requests:04d}-{uuid.uuid4().hex[:6]}"
            out = self.out_root / run_id
            out.mkdir(parents=True)
            try:
                images = [self._image(k, out, i) for i, k in enumerate(req_in.keyframes)]
                seed = req_in.seed if req_in.seed is not None else self.ctx.settings.seed
                req = MotionRequest(text=req_in.text, images=images, duration_s=req_in.duration_s, seed=seed,
                                    out_dir=str(out))
                t0 = time.perf_counter()
                final = run_request(req, self.ctx)
                seconds = round(time.perf_counter() - t0, 3)
            except IKMoError:
                _clear_failed_run(out)
                raise
            except BaseException:
                shutil.rmtree(out, ignore_errors=True)  # a request that cannot be read leaves nothing
                raise
        result = final.get("result")
        failed = final.get("status") != "ok" or result is None
        if failed:
            _clear_failed_run(out)
        reply: dict[str, Any] = {"id": run_id, "status": final.get("status"), "answer": final.get("answer"),
                                 "dir": str(out), "notes": list(final.get("notes") or []),
                                 "seconds": seconds}
        files = {p.name: p for p in out.iterdir() if p.is_file()} if out.is_dir() else {}
        reply["files"] = {name: f"/v1/runs/{run_id}/{name}" for name in sorted(files)}
        if failed or result is None:
            reply["error"] = str(final.get("error") or final.get("answer") or "the run did not finish")
            log.info("run %s failed in %.2fs: %s", run_id, seconds, reply["error"])
            return HTTPStatus.UNPROCESSABLE_ENTITY, reply
        reply["metrics"] = {k: v for k, v in result.metrics.items() if v == v}  # JSON has no NaN
        log.info("run %s: %s (%.2fs)", run_id, result.spec.description.text, seconds)
        return HTTPStatus.OK, reply

    def run_file(self, run_id: str, name: str) -> Path:
        """A file of a finished run; InputFileError when there is none (never a path outside the run)."""
        path = self.out_root / run_id / name
        if not _RUN_ID.match(run_id) or "/" in name or name.startswith(".") or not path.is_file():
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
        ext = next((e for magic, e in _IMAGE_MAGIC.items() if data.startswith(magic)), ".img")
        path = out / "inputs" / f"keyframe_{i + 1:02d}{ext}"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        return ImageRef(path=str(path), time_s=k.time_s)

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "provider": self.ctx.settings.provider, "weights": self.ctx.tools.describe()["weights"],
                "requests": self.requests}


def _validation_message(e: ValidationError) -> str:
    return "invalid request: " + validation_message(e, allowed={
        "duration_s": f"0 < seconds <= {MAX_DURATION_S:g}", "seed": f"0 ... {MAX_SEED}",
        "text": f"1 to {MAX_TEXT_CHARS} characters", "keyframes": f"at most {MAX_IMAGES} photos"})


def _clear_failed_run(out: Path) -> None:
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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; send finite numbers")


def parse_body(raw: bytes) -> dict[str, Any]:
    """A request body → its JSON object; BadRequestError for anything else (not UTF-8, not JSON,
    NaN / Infinity, integers of thousands of digits, nesting too deep for the parser)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequestError(f"the body is not UTF-8 text (byte {e.start}); send JSON encoded as UTF-8") from None
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise BadRequestError("the body is nested too deeply to read; send a flat JSON object") from None
    except ValueError as e:  # JSONDecodeError, NaN, and int() refusing a number of more than 4300 digits
        raise BadRequestError(f"the body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    return body


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


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        # The socket's timeout bounds every read and write of this connection: a client that stops
        # sending mid-request gets TimeoutError, which handle_one_request answers by closing.
        super().setup()
        self.connection.settimeout(self.server.timeout_s)

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts == ["v1", "health"]:
            self._json(HTTPStatus.OK, self.server.service.health())
        elif len(parts) == 4 and parts[:2] == ["v1", "runs"]:
            try:
                path = self.server.service.run_file(parts[2], parts[3])
            except InputFileError as e:
                self._json(HTTPStatus.NOT_FOUND, {"error": str(e)})
                return
            data = path.read_bytes()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: GET {self.path}"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?")[0].rstrip("/") != "/v1/generate":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: POST {self.path}"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY_BYTES:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"send a JSON body of 1 byte to {MAX_BODY_BYTES} bytes "
                                                         "with its Content-Length"})
            self.close_connection = True
            return
        raw = self.rfile.read(length)
        if len(raw) < length:  # the client closed before sending what it announced
            self.close_connection = True
            return
        try:
            status, reply = self.server.service.generate(parse_body(raw))
        except BadRequestError as e:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(e)})
        except IKMoError as e:
            self._json(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(e)})
        except Exception as e:  # a bug: say so, keep serving
            log.exception("request failed")
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {type(e).__name__}: {e}"})
        else:
            self._json(status, reply)

    def _not_allowed(self) -> None:
        """Methods the API has no use for: 405 (http.server's default, 501, would read as a server fault)."""
        self.close_connection = True
        self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{self.command} is not supported; use GET /v1/health, "
                                                            "GET /v1/runs/ID/FILE or POST /v1/generate"})

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed  # noqa: N815

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a malformed request line, headers too long, an unknown method):
        all the client's mistakes, so 4xx: an unknown method 405 (not 501), a version other than
        HTTP/1.x 400 (not 505)."""
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code = HTTPStatus.METHOD_NOT_ALLOWED
        elif code >= 500:
            code = HTTPStatus.BAD_REQUEST
        super().send_error(code, message, explain)

    def _json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (http.server's signature)
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    service: MotionService

    def __init__(self, address: tuple[str, int], timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def attach(self, ctx: Context, out_root: Path, allow_paths: bool = True) -> MotionService:
        """Serve `ctx` (its model loaded) into `out_root`; the socket was bound before it loaded."""
        self.service = MotionService(ctx, out_root, allow_paths=allow_paths)
        return self.service

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke (the client left, a reset): one log line, not a traceback on stderr."""
        log.warning("connection from %s ended with %s", client_address[0], repr(sys.exc_info()[1]))
        log.debug("connection error", exc_info=True)


def bind_server(host: str = "127.0.0.1", port: int = 8765, timeout_s: float = DEFAULT_TIMEOUT_S) -> _Server:
    """Bind `host:port` (port 0 picks a free one); a UsageError that says what to change when the host
    does not resolve, is not this machine's, or the port is taken. `attach` a service before serving."""
    try:
        return _Server((host, port), timeout_s)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is in use; choose another --port (0 picks a free one) or stop "
                             "what listens there") from None
        raise UsageError(f"cannot listen on --host {host} --port {port}: {e.strerror or e}; use an address of this "
                         "machine (127.0.0.1, ::1, 0.0.0.0)") from None
    except (UnicodeError, ValueError, OverflowError) as e:
        raise UsageError(f"cannot listen on --host {host!r}: {e}; use an address of this machine") from None


def make_server(service: MotionService, host: str = "127.0.0.1", port: int = 8765,
                timeout_s: float = DEFAULT_TIMEOUT_S) -> ThreadingHTTPServer:
    """The HTTP server (not started: call `serve_forever`, `shutdown` to stop); port 0 picks a free one."""
    server = bind_server(host, port, timeout_s)
    server.service = service
    return server
