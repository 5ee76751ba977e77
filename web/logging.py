"""Structured logs: one JSON object per line, and one line per request.

`RequestLog` (ASGI middleware) takes the request id from `X-Request-ID` (or makes one),
returns it in the response's `X-Request-ID`, keeps it in a context variable for every
line logged while the request runs, and logs the request when it ends: method, path,
status, duration. Websockets get their line when they close. uvicorn's own access log
is off (main.py), so that each request is logged once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = b"x-request-id"
# What a caller may send as a request id: short, and safe to repeat in a header or log.
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:@/+=-]{1,128}$")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

log = logging.getLogger("beacon.request")

# LogRecord attributes that are not the caller's `extra`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        current = request_id.get()
        if current is not None:
            entry["request_id"] = current
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(log_format: str, level: int = logging.INFO) -> None:
    """Log to stdout: JSON lines (`json`, the default) or plain text (`text`)."""
    handler = logging.StreamHandler(sys.stdout)
    if log_format == "text":
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER)
        rid = (
            given.decode("ascii")
            if given is not None and _VALID_REQUEST_ID.match(given)
            else uuid.uuid4().hex
        )
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 0
        header = (REQUEST_ID_HEADER, rid.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind in ("http.response.start", "websocket.accept"):
                status = message.get("status", 101)
                message = {**message, "headers": [*message.get("headers", ()), header]}
            elif kind == "websocket.close" and status == 0:
                status = 403  # closed before it was accepted
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            status = status or 500
            raise
        finally:
            log.info(
                "request",
                extra={
                    "method": scope.get("method", "WS"),
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "client": (scope.get("client") or ("", 0))[0],
                },
            )
            request_id.reset(token)
