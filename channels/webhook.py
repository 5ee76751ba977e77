"""The webhook channel: POSTs the event as signed JSON to the person's URL (also a
Slack-compatible incoming webhook).

Signature scheme, for receivers: `X-Beacon-Timestamp: <unix seconds>` and
`X-Beacon-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{raw body}")>`. Signing the
timestamp with the body lets a receiver refuse a replayed request (see `verify`).

A tenant chooses the URL, so the server must not become a way into its own network
(SSRF): hosts that resolve to non-public addresses are refused unless `allow_private`,
and the request goes to exactly the address that was checked (channels/addresses.py,
shared with the account's SMTP relay). Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import time

import httpx

from channels import http
from channels.addresses import BlockedAddress, public_address
from channels.base import ChannelCredentials, Notice, Outcome, RecipientResult
from common.domain import Channel

# --- Signing ---

SIGNATURE_VERSION = "v1"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Beacon-Signature` value for a body sent at `timestamp` (unix seconds)."""
    message = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify(
    secret: str,
    timestamp: str | None,
    body: bytes,
    signature_header: str | None,
    *,
    now: float,
    tolerance: float = 300,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is within
    `tolerance` seconds of `now` (so a captured request cannot be replayed later).

    The header may carry several comma-separated signatures (e.g. during a secret
    rotation); one match is enough.
    """
    if not secret or not timestamp or not signature_header:
        return False
    try:
        sent_at = int(timestamp.strip())
    except ValueError:
        return False
    if abs(now - sent_at) > tolerance:
        return False
    expected = sign(secret, sent_at, body).encode()
    # Every candidate is compared, so the time taken does not tell which one matched.
    matches = [
        hmac.compare_digest(expected, part.strip().encode("utf-8", "replace"))
        for part in signature_header.split(",")
    ]
    return any(matches)


# --- The channel ---

USER_AGENT = "Beacon-Webhooks/1"
# Enough for any receipt a receiver answers with; a larger body is not read.
MAX_REPLY_BYTES = 64 * 1024


class WebhookChannel:
    channel: Channel = Channel.WEBHOOK

    def __init__(self, *, timeout: float, allow_private: bool) -> None:
        self._timeout = timeout
        self._allow_private = allow_private
        # No proxies from the environment: the address check must see where the request
        # really goes (and the hidden path needs it too).
        self._client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            transport=http.HiddenPathTransport(),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, notice: Notice, credentials: ChannelCredentials) -> RecipientResult:
        address = notice.address
        try:
            url = _parsed(address)
        except httpx.InvalidURL:
            return _invalid(address, "the webhook URL is not a valid URL")
        if url.scheme not in ("http", "https"):
            return _invalid(address, "only http:// and https:// webhook URLs are supported")
        if not url.host:
            return _invalid(address, "the webhook URL has no host")
        host = url.host
        body = _body(notice)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Beacon-Delivery": notice.message_key,
        }
        secret = credentials.webhook_signing_secret
        if secret:
            timestamp = int(time.time())
            headers["X-Beacon-Timestamp"] = str(timestamp)
            headers["X-Beacon-Signature"] = sign(secret, timestamp, body)
        try:
            # The timeouts bound each phase; this bounds a receiver that answers a byte
            # at a time.
            async with asyncio.timeout(self._timeout * 3):
                response, reply = await self._post(address, url, headers, body)
        except BlockedAddress as blocked:
            return RecipientResult(address, Outcome.PERMANENT, "BLOCKED_ADDRESS", str(blocked))
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            return http.transport_failure(address, exc, host=host, secrets=(secret,))
        return _classify(
            notice,
            host,
            response.status_code,
            reply,
            http.retry_after_seconds(response),
            response.reason_phrase,
        )

    async def post(self, address: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """POST a body to a tenant's URL behind the same guard as `send` (status webhooks
        use it): the status and the start of the answer. Raises ValueError for a URL that
        is not http(s), BlockedAddress, and httpx/OS errors or TimeoutError (the channel's
        timeout bounds the whole exchange)."""
        url = _parsed(address)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("the URL must be http:// or https:// with a host")
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
        async with asyncio.timeout(self._timeout):
            response, reply = await self._post(address, url, headers, body)
        return response.status_code, reply

    async def _post(
        self, address: str, url: httpx.URL, headers: dict[str, str], body: bytes
    ) -> tuple[httpx.Response, bytes]:
        """The POST, sent to the checked address: the closed response, and the start of
        its body (at most MAX_REPLY_BYTES are read)."""
        extensions: dict[str, object] = {}
        if self._allow_private:
            target, shown = _routes(address, None)
        else:
            # raw_host is the ASCII (IDNA) form of the name, as DNS and TLS know it.
            name = url.raw_host.decode("ascii")
            pinned = await public_address(name, url.port or _default_port(url.scheme))
            target, shown = _routes(address, pinned)
            # The name is kept for the Host header and for TLS (SNI and the
            # certificate check).
            headers["Host"] = url.netloc.decode("ascii")
            if url.scheme == "https":
                extensions["sni_hostname"] = name
        request = self._client.build_request(
            "POST",
            shown,
            headers=headers,
            content=body,
            extensions={**extensions, http.WIRE_URL: target},
        )
        response = await self._client.send(request, stream=True)
        try:
            reply = bytearray()
            async for chunk in response.aiter_bytes():
                reply += chunk
                if len(reply) >= MAX_REPLY_BYTES:
                    break
        finally:
            await response.aclose()
        return response, bytes(reply[:MAX_REPLY_BYTES])


# Status webhooks send every event of an endpoint to one URL: its parsing (a good part of
# a request's CPU in httpx) is done once per URL, not once per event.
@functools.lru_cache(maxsize=1024)
def _parsed(address: str) -> httpx.URL:
    return httpx.URL(address.strip())


@functools.lru_cache(maxsize=1024)
def _routes(address: str, pinned: str | None) -> tuple[httpx.URL, httpx.URL]:
    """Where the request goes (the host replaced by the checked address `pinned`, if
    any) and the URL httpx sees, logs and quotes in errors: the same with a placeholder
    path, since the path may be the secret (a Slack webhook's is)."""
    target = _parsed(address)
    if pinned is not None:
        target = target.copy_with(host=pinned)
    return target, target.copy_with(raw_path=b"/__path__")


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _invalid(address: str, message: str) -> RecipientResult:
    return RecipientResult(address, Outcome.PERMANENT, "INVALID_ADDRESS", message)


def _body(notice: Notice) -> bytes:
    # The top-level "text" is what a Slack-compatible incoming webhook shows.
    payload: dict[str, object] = {
        "id": notice.message_key,
        "type": notice.data.get("type"),
        "text": notice.text,
        "subject": notice.subject,
        **notice.data,
    }
    # default=str: event data may hold datetimes or UUIDs; they go out as strings.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def _classify(
    notice: Notice,
    host: str,
    status: int,
    reply: bytes,
    retry_after: float | None,
    reason: str,
) -> RecipientResult:
    address = notice.address
    words = http.body_snippet(reply) or f"{status} {reason}".strip()
    if 200 <= status < 300:
        slack_error = _slack_refusal(reply)
        if slack_error is not None:
            return RecipientResult(
                address,
                Outcome.PERMANENT,
                slack_error,
                f"the receiver answered {status} with ok=false: {slack_error}",
            )
        # Webhook receivers have no id of their own: they know the delivery by the
        # X-Beacon-Delivery header, so that is the id to name it by.
        return http.accepted(
            address, status, words, host=host, provider_message_id=notice.message_key
        )
    if 300 <= status < 400:
        # The tenant's own URL moved: only the tenant can fix it.
        return RecipientResult(
            address,
            Outcome.PERMANENT,
            str(status),
            f"the receiver redirected ({status} {reason}); redirects are not followed, "
            "so the webhook URL needs updating",
        )
    # A receiver has no error codes of its own: the status is the code.
    refusal = http.Refusal(status, str(status), words, retry_after=retry_after)
    return http.refusal_result(address, refusal, host=host)


def _slack_refusal(reply: bytes) -> str | None:
    """The error of a Slack-style `{"ok": false, "error": ...}` answer, if it is one."""
    with contextlib.suppress(ValueError, RecursionError):  # RecursionError: nested too deeply
        body = json.loads(reply)
        if isinstance(body, dict) and body.get("ok") is False:
            error = body.get("error")
            return str(error) if error else "ok=false"
    return None
