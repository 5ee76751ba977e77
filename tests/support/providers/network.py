"""Two ways for a provider to be out of reach: a port that refuses connections, and a
server that accepts them and never answers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

from common.service import Service


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A local port that refuses connections for as long as the block runs.

    The port is bound but not listening, so nothing else can take it meanwhile and a
    connection attempt is refused at once.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


class SilentServer(Service):
    """Accepts connections, reads what it is sent, and never answers."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.close()
        await server.wait_closed()
