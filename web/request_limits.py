"""Limits on a request's body, and a quiet end for a client that goes away.

`BodyLimits` (ASGI middleware, inside the request log) gives every HTTP request's body a
deadline (BODY_TIMEOUT_SECONDS from the application's first read to the body's last
byte) and, on the paths given a cap (/graphql: GRAPHQL_MAX_BODY_BYTES), a size limit. A
Content-Length over the cap is answered 413 before anything is read; a body (chunked, or
longer than it said) that grows past the cap is answered 413 as soon as it does; a body
late past its deadline is answered 408. The answer says `Connection: close`, so uvicorn
closes the connection and the rest of the body is never read.

The limits are kept in `receive`, wherever the application reads the body: the
middleware answers at once, raises `RequestRejected` into the application to end it,
and drops whatever the application sends afterwards (Starlette's error middleware would
answer a 500).

A client that goes away mid-request makes Starlette raise ClientDisconnect where the
body is read: its request ends with a debug line, without a traceback, and is logged
with status 499 (web/logging.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.metrics import REQUESTS_LIMITED

log = logging.getLogger(__name__)

BODY_TOO_LARGE = "REQUEST_TOO_LARGE"
BODY_TIMEOUT = "REQUEST_TIMEOUT"


class RequestRejected(Exception):
    """Raised into the application when its request was refused (and answered)."""


def json_error(
    status: int, message: str, code: str, headers: Mapping[str, str] | None = None
) -> tuple[Message, Message]:
    """An error answer in GraphQL's shape, as the two ASGI messages that send it."""
    extra = headers or {}
    body = json.dumps({"errors": [{"message": message, "extensions": {"code": code}}]}).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        *((name.encode("latin-1"), value.encode("latin-1")) for name, value in extra.items()),
    ]
    return (
        {"type": "http.response.start", "status": status, "headers": raw_headers},
        {"type": "http.response.body", "body": body},
    )


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimits:
    def __init__(self, app: ASGIApp, *, caps: Mapping[str, int], timeout: float) -> None:
        self.app = app
        self.caps = dict(caps)
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.caps.get(scope["path"])
        if cap is not None:
            declared = _declared_length(scope)
            if declared is not None and declared > cap:
                REQUESTS_LIMITED.labels("body_size").inc()
                await _send_error(send, *_too_large(cap))
                return
        await _GuardedRequest(self.app, scope, receive, send, cap, self.timeout).run()


def _too_large(cap: int) -> tuple[int, str, str]:
    return 413, f"The request body is larger than {cap} bytes.", BODY_TOO_LARGE


async def _send_error(send: Send, status: int, message: str, code: str) -> None:
    start, body = json_error(status, message, code, {"connection": "close"})
    await send(start)
    await send(body)


class _GuardedRequest:
    """One request: the application's receive and send, with the limits kept."""

    def __init__(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        cap: int | None,
        timeout: float,
    ) -> None:
        self.app = app
        self.scope = scope
        self._receive = receive
        self._send = send
        self.cap = cap
        self.timeout = timeout
        self.received = 0
        self.deadline: float | None = None
        self.body_complete = False
        self.started = False
        self.answered = False  # by us: what the application sends goes nowhere
        self.gone = False  # the client disconnected

    async def run(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except RequestRejected:
            pass
        except ClientDisconnect:
            log.debug("the client went away before its request was read")
        except Exception:
            if not (self.answered or self.gone):
                raise
            # What the application made of the refusal or the disconnect (it may wrap
            # either): the request is over, and answered where it could be.
            log.debug("request ended after a refusal or a disconnect", exc_info=True)

    async def receive(self) -> Message:
        if self.answered:
            return {"type": "http.disconnect"}
        if self.body_complete:
            # Past the body, a read waits for the disconnect (a streaming response's
            # listener, say): no deadline.
            return await self._receive()
        loop = asyncio.get_running_loop()
        if self.deadline is None:
            self.deadline = loop.time() + self.timeout
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self._receive()
        except TimeoutError:
            REQUESTS_LIMITED.labels("body_timeout").inc()
            await self.reject(
                408, f"The request body did not arrive within {self.timeout:g} s.", BODY_TIMEOUT
            )
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.cap is not None and self.received > self.cap:
                REQUESTS_LIMITED.labels("body_size").inc()
                await self.reject(*_too_large(self.cap))
            if not message.get("more_body", False):
                self.body_complete = True
        elif message["type"] == "http.disconnect":
            self.gone = True
        return message

    async def reject(self, status: int, message: str, code: str) -> None:
        if not self.started and not self.gone:
            self.started = True
            await _send_error(self._send, status, message, code)
        self.answered = True
        raise RequestRejected(message)

    async def send(self, message: Message) -> None:
        if self.answered or self.gone:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)
