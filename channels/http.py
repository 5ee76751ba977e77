"""HTTP basics the HTTP channels share (telegram, whatsapp, sms, webhook): the one ladder
from an HTTP answer to an outcome, classifying network failures, hiding secrets that
travel in URLs, reading Retry-After."""

from __future__ import annotations

import email.utils
import json
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC

import httpx

from channels.base import Outcome, RecipientResult
from common.time import utcnow

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
    return max(0.0, (when - utcnow()).total_seconds())


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


def accepted(
    address: str, status: int, message: str, *, host: str, provider_message_id: str
) -> RecipientResult:
    """The provider took the message and named it `provider_message_id`."""
    return RecipientResult(
        address,
        Outcome.ACCEPTED,
        str(status),
        message,
        accepted_by=host,
        provider_message_id=provider_message_id,
    )


def not_configured(address: str, missing: str) -> RecipientResult:
    """The account lacks the credentials this channel needs (`missing` says which)."""
    return RecipientResult(
        address, Outcome.PERMANENT, "NOT_CONFIGURED", f"the account has no {missing}"
    )


def provider_code(code: object, status: int) -> str:
    """The provider's own error code where its body gives one, else the HTTP status."""
    return str(code) if isinstance(code, int | str) and str(code) else str(status)


def provider_words(words: object, response: httpx.Response) -> str:
    """What the provider's body says went wrong; else the body's start; else the status."""
    return str(words) if words else body_snippet(response.content) or status_line(response)


@dataclass(frozen=True)
class Refusal:
    """An HTTP answer that is not the provider's receipt, in the provider's own terms:
    all a channel reads from its provider's body, for `refusal_result` to decide on."""

    status: int
    # The provider's error code (`provider_code`), e.g. "131026"; else the HTTP status.
    code: str
    # The provider's words, secrets already redacted.
    message: str
    # The wait the provider asked for (a Retry-After header, or its body's own field).
    retry_after: float | None = None
    # Set ("Telegram refused the bot token") when the answer says the account's
    # credentials are wrong.
    credentials_refused: str | None = None
    # The provider's code says "too fast, try later", whatever the HTTP status.
    throttled: bool = False


def refusal_result(address: str, refusal: Refusal, *, host: str) -> RecipientResult:
    """The one HTTP status -> outcome ladder of every HTTP channel:

    - refused credentials: PERMANENT UNAUTHORIZED, since nothing sends until the
      account fixes them;
    - throttled, 408, 429 or 5xx: TRANSIENT, with the wait the provider asked for;
    - any other 4xx: PERMANENT with the provider's code and words (sending again
      cannot help);
    - anything else (a 2xx without the provider's receipt, a 1xx or 3xx): TRANSIENT
      INVALID_RESPONSE, since a proxy or an outage may stand in front of the provider.
    """
    status = refusal.status
    if refusal.credentials_refused is not None:
        return RecipientResult(
            address,
            Outcome.PERMANENT,
            "UNAUTHORIZED",
            f"{refusal.credentials_refused}: {refusal.message}",
        )
    if refusal.throttled or status in (408, 429) or status >= 500:
        return RecipientResult(
            address,
            Outcome.TRANSIENT,
            refusal.code,
            refusal.message,
            retry_after=refusal.retry_after,
        )
    if 400 <= status < 500:
        return RecipientResult(address, Outcome.PERMANENT, refusal.code, refusal.message)
    return RecipientResult(
        address,
        Outcome.TRANSIENT,
        "INVALID_RESPONSE",
        f"unexpected answer from {host}: {refusal.message}",
    )


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


# The request extension that carries the URL a request really goes to (an httpx.URL of
# the same origin): the request's own URL has a placeholder where the path is secret.
WIRE_URL = "beacon.wire_url"


class HiddenPathTransport(httpx.AsyncBaseTransport):
    """Sends each request to the URL in its `WIRE_URL` extension, so the URL that httpx
    sees, logs ("HTTP Request: POST ...") and quotes in its errors carries only a
    placeholder: a Telegram bot token and a Slack webhook's secret both live in the path.

    A client using it needs trust_env=False: proxies from the environment are mounted
    in front of the transport and would send the placeholder.
    """

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        extensions = dict(request.extensions)
        wire_url = extensions.pop(WIRE_URL, None)
        if not isinstance(wire_url, httpx.URL):
            return await self._inner.handle_async_request(request)
        wire = httpx.Request(
            request.method,
            wire_url,
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(wire)

    async def aclose(self) -> None:
        await self._inner.aclose()
