"""A TCP proxy in the test's event loop, to play a network outage between a process and
a server without touching the server itself (PostgreSQL is shared by every test).

    async with TcpProxy("127.0.0.1", 5432) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/db"
        ...
        proxy.cut()      # every connection is dropped; new ones are accepted, then closed
        proxy.restore()  # new connections reach the server again

`cut()` accepts and then closes new connections (rather than not listening at all) so
that the port stays ours and a client sees the failure at once, as it would when a
database refuses connections while it restarts.
"""

from __future__ import annotations

import asyncio
import contextlib

from common.service import Service

_CHUNK = 65536


class TcpProxy(Service):
    def __init__(
        self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._cut = False
        # Each forwarded connection: its two transports (client side, server side).
        self._links: set[tuple[asyncio.WriteTransport, asyncio.WriteTransport]] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        # Counted for tests: connections accepted and forwarded, and refused while cut.
        self.forwarded = 0
        self.refused = 0

    @property
    def is_cut(self) -> bool:
        return self._cut

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("already started")
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def cut(self) -> None:
        """Drop every forwarded connection at once, and close new ones on accept."""
        self._cut = True
        for client, upstream in list(self._links):
            client.abort()
            upstream.abort()

    def restore(self) -> None:
        """Forward new connections again (the dropped ones stay dropped)."""
        self._cut = False

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self.cut()
        # Python 3.11's Server.close leaves accepted connections to their handlers:
        # they end once their transports are aborted (above); wait for them.
        handlers = list(self._handlers)
        if handlers:
            await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._forward(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = writer.transport
        if self._cut:
            self.refused += 1
            client.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client.abort()
            return
        upstream = up_writer.transport
        if self._cut:  # cut while we were connecting
            self.refused += 1
            client.abort()
            upstream.abort()
            return
        self.forwarded += 1
        link = (client, upstream)
        self._links.add(link)
        try:
            # Either direction ending (EOF, reset, cut) ends the whole connection.
            pipes = [
                asyncio.create_task(_pipe(reader, up_writer)),
                asyncio.create_task(_pipe(up_reader, writer)),
            ]
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            client.abort()
            upstream.abort()
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._links.discard(link)
            client.abort()
            upstream.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
