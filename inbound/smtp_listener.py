"""Runs aiosmtpd inside the caller's event loop: the mail catcher, the bounce listener
and the SMTP sink in tests are built on it."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

from aiosmtpd.smtp import SMTP

from common.service import Service


class _TrackedSMTP(SMTP):
    def __init__(self, on_lost: Callable[[_TrackedSMTP], None], *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._on_lost = on_lost
        self.socket_transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # STARTTLS calls this again with the TLS transport; keep the socket's own one.
        if self.socket_transport is None:
            self.socket_transport = transport
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self._on_lost(self)


class SmtpListener(Service):
    """aiosmtpd's SMTP protocol on `loop.create_server`, without the Controller's thread.

    Living in the caller's loop lets handlers share state with that loop's code directly
    (no cross-thread hand-off) and lets tests await what the server saw.
    """

    def __init__(
        self,
        handler: object,
        host: str,
        port: int,
        hostname: str,
        *,
        implicit_tls: ssl.SSLContext | None = None,
        **smtp_options: Any,
    ) -> None:
        """`smtp_options` go to aiosmtpd's SMTP (tls_context for STARTTLS, authenticator,
        ...); `implicit_tls` makes it an SMTPS listener instead."""
        self.handler = handler
        self.host = host
        self.port = port
        self.hostname = hostname
        self._implicit_tls = implicit_tls
        self._smtp_options = smtp_options
        self._server: asyncio.Server | None = None
        self._connections: set[_TrackedSMTP] = set()
        # Counted for tests and benchmarks of connection reuse.
        self.connections_opened = 0
        self.most_open_at_once = 0
        self._all_closed = asyncio.Event()
        self._all_closed.set()

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("already started")
        self._server = await asyncio.get_running_loop().create_server(
            self._make_protocol, self.host, self.port, ssl=self._implicit_tls
        )
        # Port 0 asks the OS for a free port; report the one we actually got.
        self.port = int(self._server.sockets[0].getsockname()[1])

    def _make_protocol(self) -> _TrackedSMTP:
        protocol = _TrackedSMTP(
            self._forget,
            self.handler,
            hostname=self.hostname,
            # aiosmtpd otherwise creates or looks up a loop of its own.
            loop=asyncio.get_running_loop(),
            **self._smtp_options,
        )
        self._connections.add(protocol)
        self._all_closed.clear()
        self.connections_opened += 1
        self.most_open_at_once = max(self.most_open_at_once, len(self._connections))
        return protocol

    def _forget(self, protocol: _TrackedSMTP) -> None:
        self._connections.discard(protocol)
        if not self._connections:
            self._all_closed.set()

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # Python 3.11's Server.close leaves accepted connections open: close them, or
        # their handler tasks outlive the server (and the test's event loop).
        # Closing the socket (not only the TLS layer above it) also ends a connection
        # stuck in a STARTTLS handshake.
        for protocol in list(self._connections):
            if protocol.socket_transport is not None:
                protocol.socket_transport.close()
            else:
                self._forget(protocol)
        await server.wait_closed()
        try:
            async with asyncio.timeout(1):
                await self._all_closed.wait()
        except TimeoutError:
            # A connection closed in mid STARTTLS handshake: asyncio reports that to
            # aiosmtpd as a successful handshake, so its reader waits forever. Finish it.
            for protocol in list(self._connections):
                protocol.connection_lost(None)

    async def wait_until_idle(self) -> None:
        """Until no client is connected (for example, after a client gave up)."""
        await self._all_closed.wait()
