"""The app factory every IKMo HTTP surface is built with (`ikmo serve`, the studio, the study).

    app = create_app("IKMo", usage="use GET /v1/health or POST /v1/generate")
    app.include_router(router)                  # a fastapi.APIRouter of your routes
    WebServer(app, "127.0.0.1", 0).serve_forever()

The app has the error contract (`errors`), the request-head checks (`limits.RequestHeadMiddleware`:
HTTP version, header count), OpenAPI docs at /docs, the project's static files under /static and
its icon at /favicon.ico.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import FileResponse

from .errors import JSONReply, install_error_contract
from .limits import MAX_HEADERS, RequestHeadMiddleware
from .static import STATIC_DIR, mount_static


def create_app(title: str, *, version: str = "0.1.0", description: str = "", usage: str = "see /docs for the API",
               static: bool = True, max_headers: int = MAX_HEADERS) -> FastAPI:
    """A FastAPI app with IKMo's shared pieces; add routers with `app.include_router`.

    usage: what a client should call, said in the 405 for a method the app does not take;
    static: serve `ikmo/web/static/` under /static.
    """
    app = FastAPI(title=title, version=version, description=description, docs_url="/docs", redoc_url=None,
                  default_response_class=JSONReply)
    install_error_contract(app, usage)
    app.add_middleware(RequestHeadMiddleware, max_headers=max_headers)
    if static:
        mount_static(app)

        @app.get("/favicon.ico", include_in_schema=False)
        def favicon() -> FileResponse:
            return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")
    return app
