"""IKMo's one web layer (FastAPI + uvicorn): the app factory, the error contract, request limits,
the project's static files and a runner on a bound socket. `ikmo serve` (`ikmo.server`, the
studio of `ikmo.web.studio`) and any other HTTP surface are built from these pieces.
This package imports nothing of the agents or the model: a second app can use it alone.
"""

from .app import create_app
from .errors import ApiError, BadRequestError, ClientGone, JSONReply, error_response
from .limits import MAX_HEADERS, RequestHeadMiddleware, parse_json_object, read_body, read_json_object
from .runner import DEFAULT_TIMEOUT_S, WebServer, bind_socket
from .static import STATIC_DIR, STATIC_URL, THREE_IMPORT_MAP, mount_static

__all__ = ["DEFAULT_TIMEOUT_S", "MAX_HEADERS", "STATIC_DIR", "STATIC_URL", "THREE_IMPORT_MAP", "ApiError",
           "BadRequestError", "ClientGone", "JSONReply", "RequestHeadMiddleware", "WebServer", "bind_socket",
           "create_app", "error_response", "mount_static", "parse_json_object", "read_body", "read_json_object"]
