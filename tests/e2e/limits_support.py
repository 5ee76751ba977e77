"""What the request-limit tests share: a server on the embedded default with a few limits
set small, its demo token, and raw sockets that send exactly what a test says."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.server import ServerProcess
from tests.support.waiting import WAIT_SECONDS

_TOKEN_LINE = re.compile(r"sign-in token\s*:\s*(\S+)")


@dataclass(frozen=True)
class Running:
    server: ServerProcess
    token: str

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def ws_url(self) -> str:
        return self.server.base_url.replace("http://", "ws://") + "/graphql"

    @property
    def log(self) -> str:
        return self.server.log

    def log_lines(self) -> list[dict[str, Any]]:
        """The server's JSON log lines (the startup banner's plain lines left out)."""
        lines = []
        for line in self.server.log.splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    async def log_at_exit(self) -> str:
        """The whole log: the server is stopped first, so that every line is written
        (info lines are written in blocks, web/logging.py)."""
        await self.server.stop()
        return self.server.log

    async def tracebacks_at_exit(self) -> list[str]:
        log = await self.log_at_exit()
        return [line["exc"] for line in self.log_lines() if "exc" in line] + [
            line for line in log.splitlines() if line.startswith("Traceback")
        ]


@asynccontextmanager
async def running(tmp_path: Path, **env: str) -> AsyncIterator[Running]:
    """`python main.py serve` on the embedded default, with `env` added."""
    server = ServerProcess(tmp_path / "data", {"DATABASE_URL": "", "SMTP_URL": "", **env})
    try:
        async with server:
            found = _TOKEN_LINE.search(server.log)
            assert found, server.log
            yield Running(server, found.group(1))
    finally:
        # Captured by pytest and shown only when the test fails: the server's side.
        sys.stderr.write(f"----- server log ({server.base_url}) -----\n{server.log}\n")


class RawConnection:
    """A TCP connection to the server that sends bytes as they are given."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, running: Running, data: bytes = b"") -> RawConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.server.port)
        connection = cls(reader, writer)
        if data:
            await connection.send(data)
        return connection

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_closed(self, timeout: float = WAIT_SECONDS) -> bytes:
        """Everything the server sends until it closes the connection (a reset counts as
        closing); TimeoutError if it keeps it open past `timeout`."""
        received = b""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    chunk = await self.reader.read(65536)
                except ConnectionResetError:
                    return received
                if not chunk:
                    return received
                received += chunk

    async def close(self) -> None:
        self.writer.close()
        with suppress(ConnectionResetError, BrokenPipeError):
            await self.writer.wait_closed()


def status_of(response: bytes) -> int | None:
    """The status code of the first response in `response`, if there is one."""
    found = re.match(rb"HTTP/1\.1 (\d{3}) ", response)
    return int(found.group(1)) if found else None


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]
