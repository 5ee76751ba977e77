"""The HTTP server: uvicorn, with the connection limits it lacks.

uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but a
connection that never completes its request line and headers keeps its file descriptor
for as long as the client likes, and httptools puts no bound on the headers' size: some
20,000 such connections exhaust the descriptors. `LimitedHttpProtocol` adds:

- a deadline for the request line and headers (HEADER_TIMEOUT_SECONDS, counted from the
  connection, or from a keep-alive request's first byte): past it the connection is
  closed, with a 408 if part of a request came;
- a cap on their size (MAX_HEADER_BYTES): 431, and the connection is closed;
- a cap on open connections, websockets included (MAX_CONNECTIONS): one more is answered
  503 and closed at once, so that it holds no descriptor.

The body has its own deadline and cap at the ASGI level (web/request_limits.py).

Deadlines are checked once a second by the server's tick (`LimitedServer.on_tick`), not
with a timer per request: on the pixel's path a request costs two attribute stores.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from common.metrics import REQUESTS_LIMITED
from common.settings import Settings

log = logging.getLogger(__name__)

# Descriptors kept for everything that is not a client connection: the database and
# SMTP pools, the broadcast connection, log and data files, the listening socket.
FD_RESERVE = 256
SWEEP_EVERY_TICKS = 10  # uvicorn ticks every 0.1 s


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_seconds: float
    max_header_bytes: int
    max_connections: int  # 0: no cap


def _bare_response(status: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n" + extra + b"\r\n"
    )


_REQUEST_TIMEOUT = _bare_response(b"408 Request Timeout")
_HEADERS_TOO_LARGE = _bare_response(b"431 Request Header Fields Too Large")
_OVER_CAPACITY = _bare_response(b"503 Service Unavailable", b"retry-after: 1\r\n")


class LimitedHttpProtocol(HttpToolsProtocol):
    limits: ClassVar[ConnectionLimits]

    # The monotonic time by which the request line and headers must have arrived; None
    # while none is awaited (a request is being answered, or the connection is idle
    # between keep-alive requests, which uvicorn's own timeout covers).
    headers_due: float | None = None
    header_bytes = 0

    @classmethod
    def with_limits(cls, limits: ConnectionLimits) -> type[LimitedHttpProtocol]:
        return type(cls.__name__, (cls,), {"limits": limits})

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        cap = self.limits.max_connections
        if cap and len(self.connections) > cap:
            REQUESTS_LIMITED.labels("connections").inc()
            self._answer_and_close(_OVER_CAPACITY)
            return
        self.headers_due = time.monotonic() + self.limits.header_timeout_seconds

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.headers_due is None:
            self.headers_due = time.monotonic() + self.limits.header_timeout_seconds

    def on_headers_complete(self) -> None:
        self.headers_due = None
        self.header_bytes = 0
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.headers_due is not None:
            # Still in a request's line or headers after this read (a read that completed
            # them counts no more: what follows them is body).
            self.header_bytes += len(data)
            if self.header_bytes > self.limits.max_header_bytes:
                REQUESTS_LIMITED.labels("header_size").inc()
                self._answer_and_close(_HEADERS_TOO_LARGE)

    def headers_overdue(self) -> None:
        """The request line and headers did not arrive in time."""
        self.headers_due = None
        if self.transport.is_closing():
            return
        REQUESTS_LIMITED.labels("header_timeout").inc()
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request's headers are late while the one before it is being
            # answered: close once that answer is out.
            self.cycle.keep_alive = False
            return
        self._answer_and_close(_REQUEST_TIMEOUT if self.header_bytes else b"")

    def _answer_and_close(self, response: bytes) -> None:
        self.headers_due = None
        if response:
            self.transport.write(response)
        self.transport.close()


class LimitedServer(uvicorn.Server):
    async def on_tick(self, counter: int) -> bool:
        if counter % SWEEP_EVERY_TICKS == 0:
            close_overdue(self.server_state.connections, time.monotonic())
        return await super().on_tick(counter)


def close_overdue(connections: set[Any], now: float) -> None:
    for connection in list(connections):
        due = getattr(connection, "headers_due", None)
        if due is not None and due <= now and isinstance(connection, LimitedHttpProtocol):
            connection.headers_overdue()


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard one; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as error:
            log.warning("could not raise the open-file limit to %d: %s", hard, error)
    return soft


def connection_cap(configured: int, fd_limit: int) -> int:
    """MAX_CONNECTIONS, lowered to what the open-file limit leaves for clients (0: no
    cap, as configured)."""
    if not configured or fd_limit < 0 or fd_limit == resource.RLIM_INFINITY:
        return configured
    room = max(fd_limit - FD_RESERVE, 1)
    if configured <= room:
        return configured
    log.warning(
        "MAX_CONNECTIONS=%d is more than the open-file limit (%d) leaves room for; using %d",
        configured,
        fd_limit,
        room,
    )
    return room


def serve(app: Any, settings: Settings, **options: Any) -> None:
    """Run `app` as uvicorn.run would, with the limited protocol and server."""
    limits = ConnectionLimits(
        header_timeout_seconds=settings.header_timeout_seconds,
        max_header_bytes=settings.max_header_bytes,
        max_connections=connection_cap(settings.max_connections, raise_fd_limit()),
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=LimitedHttpProtocol.with_limits(limits),
        **options,
    )
    server = LimitedServer(config)
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run
        server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's STARTUP_FAILURE
