"""A client of `ikmo serve`'s documented /v1 API, standard library only (it runs inside Blender).

    POST /v1/generate      {"text", "keyframes": [{"image_base64", "time_s"?}], "duration_s"?, "seed"?}
                           → 200 {"id", "status", "answer", "files": {name: url}, "notes", ...}
                           → 400 / 422 {"error": "..."}
    GET  /v1/runs/ID/FILE  a file of a finished run
    GET  /v1/health        {"status": "ok", ...}

Nothing else of the server is assumed. Photos always travel inline (base64), so the server may run
on another loopback port or machine. Every failure becomes `ServerError` with one line to show.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8765"


class ServerError(Exception):
    """What went wrong talking to the server, as one line for the panel."""


def _request(url: str, data: bytes | None = None, timeout: float = 120.0) -> bytes:
    headers = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 (the user's own server URL)
            return r.read()
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            message = json.loads(body).get("error") or body.decode("utf-8", "replace")
        except ValueError:
            message = body.decode("utf-8", "replace")[:300]
        raise ServerError(f"the server answered {e.code}: {message}") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ServerError(f"cannot reach the IKMo server at {url} ({reason}); start it with "
                          "`ikmo serve` and check the address in the panel") from e


def _base(server: str) -> str:
    server = server.strip().rstrip("/")
    if server.endswith("/v1"):
        server = server[: -len("/v1")]
    parts = urllib.parse.urlparse(server)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ServerError(f"server address {server!r} is not an http URL; use e.g. {DEFAULT_URL}")
    return server


def health(server: str, timeout: float = 10.0) -> dict[str, Any]:
    """GET /v1/health."""
    return json.loads(_request(_base(server) + "/v1/health", timeout=timeout))


def generate(server: str, text: str, photos: list[tuple[str, float | None]] | None = None, *,
             duration_s: float | None = None, seed: int | None = None, timeout: float = 300.0) -> dict[str, Any]:
    """POST /v1/generate with `text` and photo files [(path, time in seconds or None)]; the reply."""
    keyframes = []
    for path, time_s in photos or []:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ServerError(f"cannot read the photo {path}: {e.strerror or e}; pick it again") from e
        kf: dict[str, Any] = {"image_base64": base64.b64encode(data).decode("ascii")}
        if time_s is not None:
            kf["time_s"] = float(time_s)
        keyframes.append(kf)
    body: dict[str, Any] = {"text": text, "keyframes": keyframes}
    if duration_s is not None:
        body["duration_s"] = float(duration_s)
    if seed is not None:
        body["seed"] = int(seed)
    reply = json.loads(_request(_base(server) + "/v1/generate", json.dumps(body).encode("utf-8"), timeout))
    if not isinstance(reply, dict) or "files" not in reply:
        raise ServerError("the server's reply has no files; is it an IKMo server?")
    return reply


def download(server: str, reply: dict[str, Any], name: str, folder: str, timeout: float = 60.0) -> str:
    """Fetch the run file `name` (e.g. motion.glb) of a generate `reply` into `folder`; its path."""
    url = reply.get("files", {}).get(name)
    if not url:
        have = ", ".join(sorted(reply.get("files", {})))
        raise ServerError(f"the run {reply.get('id')} has no {name} (files: {have})")
    data = _request(urllib.parse.urljoin(_base(server) + "/", url), timeout=timeout)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{reply.get('id', 'run')}_{name}")
    with open(path, "wb") as f:
        f.write(data)
    return path
