"""Per-request limits every IKMo HTTP app shares: how many headers, how large a body, and reading
a body as a JSON object with one clear message for each way it can be wrong.

The time a client may take to send a request is the server's (`runner.WebServer(timeout_s=...)`).
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import BadRequestError, ClientGone, error_response

MAX_HEADERS = 100  # as http.server: a request with more is refused (431)


class RequestHeadMiddleware:
    """The request line and headers, checked before any route (ASGI middleware): 400 for an HTTP
    version other than 1.0 / 1.1 (h11 parses any digit), 431 for more than `max_headers` headers."""

    def __init__(self, app: ASGIApp, max_headers: int = MAX_HEADERS) -> None:
        self.app, self.max_headers = app, max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("http_version") not in ("1.0", "1.1"):
            reply = error_response(HTTPStatus.BAD_REQUEST, f"Invalid HTTP version ({scope.get('http_version')}); "
                                                           "send HTTP/1.1")
            await reply(scope, receive, send)
            return
        if scope["type"] == "http" and len(scope["headers"]) > self.max_headers:
            reply = error_response(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                                   f"Too many headers ({len(scope['headers'])}; at most {self.max_headers}); "
                                   "send fewer")
            await reply(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def read_body(request: Request, max_bytes: int, what: str = "a JSON body") -> bytes:
    """The request's body, of 1 to `max_bytes` bytes announced by its Content-Length.

    BadRequestError (400) for a missing, malformed or too large Content-Length (before anything is
    read) or a body longer than announced; ClientGone when the client leaves mid-body (the server's
    send timeout closes such a connection).
    """
    header = request.headers.get("content-length", "")
    length = int(header) if header.isdigit() else -1
    if not 0 < length <= max_bytes:
        shown = f" (this one announced {header!r})" if header and length != 0 else ""
        raise BadRequestError(f"send {what} of 1 byte to {max_bytes} bytes with its Content-Length{shown}")
    chunks, got = [], 0
    try:
        async for chunk in request.stream():
            got += len(chunk)
            if got > length:
                raise BadRequestError(f"the body is longer than its Content-Length {length}; send {what} of "
                                      "exactly the announced size")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientGone from None
    if got < length:
        raise ClientGone
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; send finite numbers")


def parse_json_object(raw: bytes) -> dict[str, Any]:
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


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """`read_body` + `parse_json_object`: the request's JSON object, every mistake a 400."""
    return parse_json_object(await read_body(request, max_bytes))
