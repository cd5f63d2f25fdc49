"""The error contract of every IKMo HTTP app: each error is JSON `{"error": "<one line saying what
to do>"}` with a 4xx status for the client's mistakes and 500 only for a bug.

- `ApiError(status, message)` (and `BadRequestError`, 400): raise it from a route;
- an unknown path, or a path that does not take this method while the app uses it elsewhere:
  404 `no such endpoint: METHOD PATH`;
- a method the app never uses: 405 `PUT is not supported; <usage>` (`Unsupported method 'BREW'`
  for a name that is no HTTP method at all);
- a body or parameter FastAPI's own validation rejects: 400 `invalid request: <field> = <value>: ...`;
- anything else: 500 `internal error: <type>: <message>`, logged with its traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from http import HTTPMethod, HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ikmo.motion_model.errors import validation_message

log = logging.getLogger(__name__)

_HTTP_METHODS = {m.value for m in HTTPMethod}


class JSONReply(JSONResponse):
    """JSON as `json.dumps` writes it (`{"status": "ok"}`: a space after each separator, non-ASCII
    escaped), the format `ikmo serve`'s clients have always read; NaN is refused, never sent."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False).encode()


class ApiError(Exception):
    """A request the app answers with `status` and `{"error": message}` (a client's mistake: 4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = int(status), message


class BadRequestError(ApiError):
    """A request that cannot be read: 400 with this message."""

    def __init__(self, message: str) -> None:
        super().__init__(HTTPStatus.BAD_REQUEST, message)


class ClientGone(Exception):  # noqa: N818  (a condition, not an error of ours)
    """The client closed the connection before its request was read; nothing is answered."""


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one shape of an error reply."""
    return JSONReply({"error": message}, status_code=status, headers=headers)


def request_target(request: Request) -> str:
    """The path as the client sent it (percent-escapes kept), with its query."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    return raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


def _routes(routes: Any) -> Iterator[Any]:
    """The routes of a route list, those of included routers too (newer FastAPI keeps an included
    router as one entry that holds the original router)."""
    for r in routes:
        inner = getattr(getattr(r, "original_router", None), "routes", None)
        if inner is not None:
            yield from _routes(inner)
        else:
            yield r


def app_methods(app: FastAPI) -> set[str]:
    """Every HTTP method some route of `app` takes (a mount of static files takes GET and HEAD)."""
    methods: set[str] = set()
    for route in _routes(app.routes):
        methods |= set(getattr(route, "methods", None) or ({"GET", "HEAD"} if hasattr(route, "app") else ()))
    return methods


def install_error_contract(app: FastAPI, usage: str) -> None:
    """Register the handlers that give every error of `app` the contract's shape.

    usage: what a client should call instead, said after a 405 (e.g. "use GET /v1/health or POST
    /v1/generate").
    """

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.message)

    @app.exception_handler(ClientGone)
    async def _client_gone(request: Request, exc: ClientGone) -> Response:
        return Response(status_code=HTTPStatus.BAD_REQUEST)  # nobody reads it: the connection is closed

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        method, target = request.method, request_target(request)
        if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED and method not in app_methods(app):
            said = f"{method} is not supported" if method in _HTTP_METHODS else f"Unsupported method {method!r}"
            return error_response(HTTPStatus.METHOD_NOT_ALLOWED, f"{said}; {usage}")
        if exc.status_code in (HTTPStatus.NOT_FOUND, HTTPStatus.METHOD_NOT_ALLOWED):
            return error_response(HTTPStatus.NOT_FOUND, f"no such endpoint: {method} {target}")
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI prefixes each location with where it was found ("body", "query", "path").
        class _Stripped:
            def errors(self, include_url: bool = False) -> list[dict]:
                return [{**e, "loc": tuple(e.get("loc", ()))[1:] or e.get("loc", ())} for e in exc.errors()]

        return error_response(HTTPStatus.BAD_REQUEST, "invalid request: " + validation_message(_Stripped()))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request_target(request))
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {type(exc).__name__}: {exc}")
