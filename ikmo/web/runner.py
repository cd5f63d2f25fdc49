"""Run an ASGI app (a FastAPI app of `ikmo.web.create_app`) with uvicorn on a socket bound first.

    server = WebServer(app, "127.0.0.1", 0)     # binds now: a taken port is a UsageError, port 0 a free one
    log.info("serving on %s", server.url)        # the real port
    server.serve_forever()                       # blocks; Ctrl-C (SIGINT) or shutdown() from another thread stops

    with WebServer(app).start() as server:       # or in a thread (tests, the studio's own tests)
        httpx.get(server.url + "/v1/health")

The server speaks HTTP/1.1 through `protocol.GuardedH11Protocol` (a send timeout, explained 400s).
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from typing import Any

import uvicorn

from ikmo.motion_model.errors import UsageError

from .protocol import GuardedH11Protocol

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0  # to send a request, or to stay idle between two on one connection
MAX_HEAD_BYTES = 96 * 1024  # a request's line and headers (http.server allowed 64 KiB per line)


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0 picks a free one); a UsageError that says what
    to change when the host does not resolve, is not this machine's, or the port is taken."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot listen on --host {host!r}: {e}; use an address of this machine") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server: restart without waiting
        sock.bind((host, port))
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is in use; choose another --port (0 picks a free one) or stop "
                             "what listens there") from None
        raise UsageError(f"cannot listen on --host {host} --port {port}: {e.strerror or e}; use an address of this "
                         "machine (127.0.0.1, ::1, 0.0.0.0)") from None
    except (UnicodeError, ValueError, OverflowError) as e:
        sock.close()
        raise UsageError(f"cannot listen on --host {host!r}: {e}; use an address of this machine") from None
    return sock


class WebServer:
    """uvicorn serving `app` on a socket bound at construction.

    host/port: where to listen (port 0: a free one; `port` and `url` then say which);
    timeout_s: seconds a client may go without sending a byte while it owes a request (or between
    two requests on one connection) before its connection is closed; max_body_bytes: named in the
    400 for a malformed Content-Length; sock: a socket bound before (`bind_socket`), e.g. to refuse
    a taken port before loading what the app needs.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, timeout_s: float = DEFAULT_TIMEOUT_S,
                 max_body_bytes: int | None = None, sock: socket.socket | None = None) -> None:
        self.app = app
        self.sock = sock if sock is not None else bind_socket(host, port)
        protocol = type("Protocol", (GuardedH11Protocol,), {"max_body_bytes": max_body_bytes})
        # timeout_keep_alive is typed int, but it only goes to loop.call_later: a float works.
        self.config = uvicorn.Config(app, http=protocol, ws="none", lifespan="on",
                                     timeout_keep_alive=timeout_s,  # type: ignore[arg-type]
                                     h11_max_incomplete_event_size=MAX_HEAD_BYTES, log_config=None,
                                     access_log=False, server_header=False, timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(self.config)
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def server_address(self) -> tuple[str, int]:
        """(host, port) actually bound, as `socketserver` names it."""
        addr = self.sock.getsockname()
        return str(addr[0]), int(addr[1])

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        """`http://HOST:PORT` of the bound socket (IPv6 in brackets)."""
        host = self.server_address[0]
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve until SIGINT / SIGTERM (in the main thread; uvicorn re-raises the signal afterwards, so
        Ctrl-C arrives as KeyboardInterrupt) or `shutdown()`."""
        self._stopped.clear()
        try:
            self._server.run(sockets=[self.sock])
        finally:
            self._stopped.set()

    def start(self, ready_timeout_s: float = 30.0) -> WebServer:
        """Serve in a daemon thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self.serve_forever, name="ikmo-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + ready_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web server did not start; see the log")
            time.sleep(0.01)
        return self

    def shutdown(self) -> None:
        """Stop serving (from another thread) and wait for `serve_forever` to return."""
        self._server.should_exit = True
        if self._server.started:
            self._stopped.wait(timeout=30)

    def server_close(self) -> None:
        """Close the listening socket."""
        self.sock.close()

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
