"""HTTP basics the HTTP channels share (telegram, whatsapp, sms, webhook): classifying
failures, hiding secrets that travel in URLs, reading Retry-After."""

from __future__ import annotations

import email.utils
import json
import socket
import ssl
from collections.abc import Iterable
from datetime import UTC, datetime

import httpx

from channels.base import Outcome, RecipientResult

REDACTED = "********"


def host_of(url: str) -> str:
    """The host part of a URL, for `accepted_by` (never the path: it may hold a secret)."""
    try:
        return httpx.URL(url).host or url
    except httpx.InvalidURL:
        return "(invalid URL)"


def redact(text: str, *secrets: str | None) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The `Retry-After` header (RFC 9110 10.2.3: delay-seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def json_object(response: httpx.Response) -> dict[str, object] | None:
    """The body as a JSON object, or None when it is anything else (an HTML error page
    from a proxy in front of the provider, say)."""
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        return None
    return body if isinstance(body, dict) else None


def body_snippet(content: bytes, limit: int = 200) -> str:
    """The start of a body as one readable line, for messages about unexpected answers."""
    text = " ".join(content.decode("utf-8", "replace").split())
    return shorten(text, limit)


def status_line(response: httpx.Response) -> str:
    return f"{response.status_code} {response.reason_phrase}".strip()


def transport_failure(
    address: str, exc: BaseException, *, host: str, secrets: Iterable[str | None] = ()
) -> RecipientResult:
    """A request that got no HTTP answer at all: always worth retrying."""
    code, description = _network_failure(exc, host)
    return RecipientResult(address, Outcome.TRANSIENT, code, redact(description, *secrets))


def _causes(exc: BaseException) -> list[BaseException]:
    # httpx wraps httpcore's error, which wraps the OSError that says what happened.
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _network_failure(exc: BaseException, host: str) -> tuple[str, str]:
    chain = _causes(exc)

    def caused_by(kind: type[BaseException]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, kind)), None)

    if isinstance(exc, httpx.ConnectTimeout):
        return "TIMEOUT", f"timed out connecting to {host}"
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "TIMEOUT", f"timed out waiting for {host} to answer"
    if caused_by(ConnectionRefusedError) is not None:
        return "CONNECTION_REFUSED", f"{host} refused the connection"
    if (gaierror := caused_by(socket.gaierror)) is not None:
        return "HOST_NOT_FOUND", f"host name lookup for {host} failed: {gaierror}"
    if (tls := caused_by(ssl.SSLError)) is not None:
        return "TLS_ERROR", f"TLS with {host} failed: {tls}"
    if isinstance(exc, httpx.ConnectError):
        return "CONNECTION_FAILED", f"could not connect to {host}: {exc}"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "DISCONNECTED", f"{host} closed the connection: {exc}"
    return "NETWORK_ERROR", f"{host}: {exc or type(exc).__name__}"


# The request extension that carries the real path (bytes, with the query).
WIRE_PATH = "beacon.wire_path"


class HiddenPathTransport(httpx.AsyncBaseTransport):
    """Sends each request to the path (and query) in its `WIRE_PATH` extension, so the
    URL that httpx sees, logs ("HTTP Request: POST ...") and quotes in its errors carries
    only a placeholder: a Telegram bot token and a Slack webhook's secret both live in
    the path.

    A client using it needs trust_env=False: proxies from the environment are mounted
    in front of the transport and would send the placeholder.
    """

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        extensions = dict(request.extensions)
        wire_path = extensions.pop(WIRE_PATH, None)
        if not isinstance(wire_path, bytes):
            return await self._inner.handle_async_request(request)
        wire = httpx.Request(
            request.method,
            request.url.copy_with(raw_path=wire_path),
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(wire)

    async def aclose(self) -> None:
        await self._inner.aclose()
