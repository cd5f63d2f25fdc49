"""uvicorn's h11 protocol with two things a server facing scripts and browsers needs:

- a send timeout: a client that stops sending in the middle of a request (or never sends one)
  loses its connection after the server's `timeout_keep_alive` seconds without a byte, so it
  cannot hold a connection forever; a request that was read completely is never cut, however
  long the app takes to answer (a motion, a stream of progress events);
- a request without a Host header is taken as addressed to this server (http.server's and most
  servers' leniency; h11 refuses it), so scripts speaking bare HTTP/1.1 are served;
- a clear JSON 400 for a request h11 cannot parse (http.server's wording: "Bad request syntax",
  "Bad request version", "Invalid HTTP version", a Content-Length that is not a number), instead
  of uvicorn's plain "Invalid HTTP request received.".
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_HEAD_KEEP = 8192  # bytes of a request's head kept to explain a parse error


def explain_bad_request(head: bytes, max_body_bytes: int | None = None) -> str:
    """Why a request head cannot be parsed, in one line (the first thing wrong with it)."""
    text = head.decode("latin-1")
    line = text.split("\r\n", 1)[0].split("\n", 1)[0]
    words = line.split()
    if len(words) == 3 and words[2].startswith("HTTP/"):
        version = words[2][5:]
        if not re.fullmatch(r"\d+\.\d+", version):
            return f"Bad request version ({words[2]!r}); send HTTP/1.1"
        if not version.startswith("1."):
            return f"Invalid HTTP version ({version}); send HTTP/1.1"
    elif line:
        return f"Bad request syntax ({line[:200]!r}); send 'METHOD /path HTTP/1.1'"
    m = re.search(r"\r?\ncontent-length:[ \t]*([^\r\n]*)", text, re.IGNORECASE)
    if m and not m.group(1).strip().isdigit():
        limit = f"1 byte to {max_body_bytes} bytes" if max_body_bytes else "its size in bytes"
        return f"bad Content-Length {m.group(1).strip()!r}: send a body of {limit} with its Content-Length"
    return "Bad request: the request head cannot be parsed as HTTP/1.1; check the headers"


def _with_host(data: bytes, head_end: int, server: tuple[str, int | None] | None) -> bytes:
    """`data` with a Host header added to its request head (which ends at `head_end`) when it has none."""
    if head_end < 0:
        return data
    head = data[:head_end]
    lines = head.split(b"\n")
    if len(lines[0].split()) != 3 or any(line.lower().startswith(b"host:") for line in lines[1:]):
        return data
    host = f"{server[0]}:{server[1]}" if server else "localhost"
    cut = len(lines[0]) + 1
    return data[:cut] + b"Host: " + host.encode() + b"\r\n" + data[cut:]


class GuardedH11Protocol(H11Protocol):
    """`H11Protocol` with a send timeout and explained 400s (see the module's docstring)."""

    max_body_bytes: int | None = None  # named in the 400 for a bad Content-Length

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._send_timer: asyncio.TimerHandle | None = None
        self._head = bytearray()  # the request head being received
        self._last_head = b""  # the last head given to h11, to explain a parse error

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._arm()
        if self.conn.their_state is h11.IDLE:  # a request head is coming: hold it until it is whole
            self._head += data
            ends = [i for i in (self._head.find(b"\r\n\r\n"), self._head.find(b"\n\n")) if i >= 0]
            if not ends and len(self._head) <= (self.config.h11_max_incomplete_event_size or _HEAD_KEEP):
                self._unset_keepalive_if_required()
                return
            data, self._last_head = _with_host(bytes(self._head), min(ends) if ends else -1, self.server), bytes(
                self._head[:_HEAD_KEEP])
            self._head.clear()
        super().data_received(data)

    def _arm(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
        self._send_timer = self.loop.call_later(self.timeout_keep_alive, self._send_timed_out)

    def _send_timed_out(self) -> None:
        """No byte for `timeout_keep_alive` s: close if the client still owes us a request or its body."""
        self._send_timer = None
        if self.transport.is_closing():
            return
        if self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED):
            return  # the request is in; the app answers in its own time
        if self.flow.read_paused:  # we stopped reading (the app is slow to take the body): not the client's fault
            self._arm()
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """A request h11 cannot parse: JSON 400 saying what is wrong, then the connection closes."""
        message = explain_bad_request(self._last_head or bytes(self._head), self.max_body_bytes)
        self.logger.info("refused a request that cannot be parsed: %s", message)
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                   (b"content-length", str(len(body)).encode())]
        try:
            self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
            self.transport.write(self.conn.send(h11.Data(data=body)))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:  # h11 is in its error state and will not write: send it raw
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
                                 + b"\r\n" + body)
        self.transport.close()
