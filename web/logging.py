"""Structured logs: one JSON object per line, and one line per request.

`RequestLog` (ASGI middleware) takes the request id from `X-Request-ID` (or makes one),
returns it in the response's `X-Request-ID`, keeps it in a context variable for every
line logged while the request runs, and logs the request when it ends: method, path,
status, duration. Websockets get their line when they close. uvicorn's own access log
is off (main.py), so that each request is logged once.

What must not be logged: a secret in a URL's query (`?token=…`, which uvicorn's
websocket lines repeat: `RedactSecrets`), and recipient addresses and VERP tokens,
which aiosmtpd logs at INFO for every SMTP command (the mail catcher, the bounce
listener): its lines are DEBUG lines here (`DebugOnly`). A request that ends because its
client went away is logged with status 499 (nginx's "client closed request").

A line per request is on the pixel's hot path, so it is cheap: the record is made
directly (no caller lookup), and lines are written in blocks, at the latest every
`FLUSH_SECONDS`, and at once for warnings and errors.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import re
import sys
import threading
import time
from contextvars import ContextVar
from typing import IO, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = b"x-request-id"
PIXEL_PREFIX = "/p/"
PIXEL_PATH = "/p/{token}.gif"
# What a caller may send as a request id: short, and safe to repeat in a header or log.
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}\Z")
FLUSH_SECONDS = 0.5

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

log = logging.getLogger("beacon.request")

# LogRecord attributes that are not the caller's `extra` (uvicorn adds color_message).
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
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


_second: tuple[int, str] = (-1, "")


def _timestamp(created: float) -> str:
    """ISO 8601 in UTC with milliseconds; the part up to the second is made once a second."""
    global _second
    whole = int(created)
    if _second[0] != whole:
        _second = (whole, dt.datetime.fromtimestamp(whole, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{_second[1]}.{int((created - whole) * 1000):03d}+00:00"


class BlockWriter(logging.StreamHandler[IO[str]]):
    """A stream handler that leaves flushing to a timer (and to warnings and errors),
    so that a busy server does one write for many lines."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self._flusher = threading.Thread(target=self._flush_now_and_then, daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            with self.lock if self.lock is not None else _NO_LOCK:
                self.stream.write(line + self.terminator)
                if record.levelno >= logging.WARNING:
                    self.stream.flush()
        except Exception:
            self.handleError(record)

    def write_line(self, line: str) -> None:
        """A line already formatted (the request log's own)."""
        with self.lock if self.lock is not None else _NO_LOCK:
            self.stream.write(line + self.terminator)

    def _flush_now_and_then(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


_NO_LOCK = _NoLock()


# Query parameters whose values are secrets (any name ending in "token", e.g.
# access_token, hub.verify_token; keys, secrets, passwords, signatures).
_SECRET_PARAM = re.compile(
    r"(?i)((?:^|[?&;\s])[\w.\-]*(?:token|key|secret|password|passwd|signature|sig|auth)=)"
    r"[^&;\s\"']*"
)
# Loggers whose lines may carry a URL with its query string.
URL_LOGGERS = ("uvicorn.error", "uvicorn.access")
# aiosmtpd: every SMTP command line, MAIL FROM and RCPT TO addresses (VERP tokens).
SMTP_LOGGERS = ("mail.log",)


def redact_query_secrets(text: str) -> str:
    return _SECRET_PARAM.sub(r"\1[redacted]", text) if "=" in text else text


class RedactSecrets(logging.Filter):
    """Replaces the values of secret query parameters in a line with [redacted]."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_query_secrets(message)
        if redacted is not message:
            record.msg, record.args = redacted, None
        return True


class DebugOnly(logging.Filter):
    """Makes a logger's INFO lines DEBUG lines: written only when the root logs DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno > logging.INFO or logging.getLogger().isEnabledFor(logging.DEBUG)


def install_filters() -> None:
    for name in URL_LOGGERS:
        _add_once(logging.getLogger(name), RedactSecrets)
    for name in SMTP_LOGGERS:
        _add_once(logging.getLogger(name), DebugOnly)


def _add_once(logger: logging.Logger, kind: type[logging.Filter]) -> None:
    if not any(isinstance(existing, kind) for existing in logger.filters):
        logger.addFilter(kind())


def setup_logging(log_format: str, level: int = logging.INFO) -> None:
    """Log to stdout: JSON lines (`json`, the default) or plain text (`text`)."""
    # Nothing in our lines needs the thread or process names: not worth their lookup.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if log_format == "text":
        handler: logging.Handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        # A buffer of our own on stdout's file: one write for many lines, even when
        # PYTHONUNBUFFERED makes sys.stdout write each line at once.
        stream = open(  # noqa: SIM115 - lives as long as the process
            sys.stdout.fileno(), "w", buffering=1 << 16, encoding="utf-8", closefd=False
        )
        handler = BlockWriter(stream)
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    install_filters()


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 0
        header = (REQUEST_ID_HEADER, rid.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start" or kind == "websocket.accept":
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
        else:
            if status == 0 and scope["type"] == "http":
                status = 499  # the client went away before it was answered
        finally:
            if log.isEnabledFor(logging.INFO):
                _log_request(scope, status, time.perf_counter() - started)
            request_id.reset(token)


def request_id_of(scope: Scope) -> str:
    """The caller's `X-Request-ID` if it is a safe one, else a new id."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            if _VALID_REQUEST_ID.match(value):
                return str(value.decode("ascii"))
            break
    # Unique, not secret: the fast generator will do.
    return f"{random.getrandbits(128):032x}"


def _log_request(scope: Scope, status: int, seconds: float) -> None:
    client = scope.get("client")
    path = scope["path"]
    if path.startswith(PIXEL_PREFIX):
        # A pixel's token names a message, and its client is a recipient's address:
        # together, who read what from where. Neither is logged (read confidence keeps
        # only a coarse network label).
        path, client = PIXEL_PATH, None
    fields = {
        "method": scope.get("method", "WS"),
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "client": client[0] if client else "",
    }
    writer = _direct_writer()
    if writer is not None:
        # What JsonFormatter would write for this record, without making the record.
        rid = request_id.get()
        line = (
            f'{{"ts": "{_timestamp(time.time())}", "level": "info", '
            f'"logger": "{log.name}", "msg": "request", '
            + (f'"request_id": {json.dumps(rid)}, ' if rid is not None else "")
            + json.dumps(fields)[1:]
        )
        writer.write_line(line)
        return
    record = logging.LogRecord(log.name, logging.INFO, __file__, 0, "request", None, None)
    record.__dict__.update(fields)
    log.handle(record)


def log_pixel_request(method: str, status: int, seconds: float, rid: str) -> None:
    """A pixel hit's request line (web/stack.py answers pixels before `RequestLog`): the
    same line as any request's, with neither token nor client, made from constants."""
    if not log.isEnabledFor(logging.INFO):
        return
    writer = _direct_writer()
    if writer is None:
        token = request_id.set(rid)
        try:
            _log_request({"method": method, "path": PIXEL_PATH, "client": None}, status, seconds)
        finally:
            request_id.reset(token)
        return
    # A request id is hex, or passed `_VALID_REQUEST_ID`: nothing in it needs escaping.
    writer.write_line(
        f'{_pixel_line_start(time.time())}"{rid}", "method": "{method}",'
        f' "path": "{PIXEL_PATH}", "status": {status},'
        f' "duration_ms": {seconds * 1000:.3f}, "client": ""}}'
    )


_pixel_start: tuple[int, str] = (-1, "")


def _pixel_line_start(now: float) -> str:
    """A pixel line up to its request id; made once a millisecond (a busy server answers
    several pixels in one)."""
    global _pixel_start
    millisecond = int(now * 1000)
    if _pixel_start[0] != millisecond:
        second = _timestamp(millisecond // 1000)[:19]
        _pixel_start = (
            millisecond,
            f'{{"ts": "{second}.{millisecond % 1000:03d}+00:00", "level": "info",'
            f' "logger": "{log.name}", "msg": "request", "request_id": ',
        )
    return _pixel_start[1]


def _direct_writer() -> BlockWriter | None:
    """The root's BlockWriter, when a request line goes nowhere else and nothing filters
    it; otherwise None (and the line takes the ordinary way)."""
    if log.handlers or log.filters or not log.propagate:
        return None
    root = logging.getLogger()
    if root.filters or len(root.handlers) != 1:
        return None
    handler = root.handlers[0]
    if (
        not isinstance(handler, BlockWriter)
        or handler.filters
        or type(handler.formatter) is not JsonFormatter
        or handler.level > logging.INFO
    ):
        return None
    return handler
