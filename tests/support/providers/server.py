"""A Starlette app served by uvicorn inside the test's event loop on an ephemeral port,
and the record of the requests it got.

    async with LocalServer(app) as server:
        server.url   # "http://127.0.0.1:<port>"
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.requests import Request
from starlette.types import ASGIApp

from common.service import Service


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    # Header names in lower case.
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    @classmethod
    async def of(cls, request: Request) -> RecordedRequest:
        return cls(
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            headers={name.lower(): value for name, value in request.headers.items()},
            body=await request.body(),
        )


class _Server(uvicorn.Server):
    """uvicorn's server with an event for "listening", and without its signal handlers
    (Ctrl-C must still stop the test run, not just this server)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class LocalServer(Service):
    def __init__(self, app: ASGIApp) -> None:
        self._server = _Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=0,
                log_level="warning",
                # No access log: it would print request paths (a Telegram bot token is
                # one) into the logs that tests check for secrets.
                access_log=False,
                log_config=None,
                lifespan="off",
                ws="none",
            )
        )
        self._task: asyncio.Task[None] | None = None
        self.port = 0
        # Every request the server got, in order.
        self.requests: list[RecordedRequest] = []

    async def record(self, request: Request) -> RecordedRequest:
        recorded = await RecordedRequest.of(request)
        self.requests.append(recorded)
        return recorded

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        ready = asyncio.create_task(self._server.ready.wait())
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not self._server.ready.is_set():
            ready.cancel()
            await self._task  # raises what stopped it
            raise RuntimeError("the local server stopped before it was listening")
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._task = None
