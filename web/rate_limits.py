"""Rate limits on /graphql, per API token and per client address, kept in this process.

Each key (a client address as uvicorn's proxy handling gives it, or a hash of the bearer
token presented) has a token bucket that holds up to N requests and refills at N a
minute: a client may burst N requests, then keeps to N a minute. A request over the
limit gets 429 with `Retry-After` (whole seconds) and a GraphQL-shaped error,
`extensions.code` RATE_LIMITED. What counts: every /graphql HTTP request, every new
/graphql websocket (its address at the handshake, its token at `connection_init`).
The pixel, callbacks, health and metrics are not limited here.

The buckets live in each API node's memory: with several nodes behind a load balancer a
client gets up to N per node (docs/adr/0015-request-limits.md). Memory is bounded: a
bucket that has refilled is the same as no bucket and is dropped, and past `max_keys`
buckets the least recently used go first.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from common.metrics import REQUESTS_LIMITED
from web.request_limits import json_error

RATE_LIMITED = "RATE_LIMITED"
MAX_KEYS = 100_000
SWEEP_SECONDS = 60.0


class TokenBuckets:
    def __init__(
        self,
        per_minute: int,
        *,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens a second
        self.max_keys = max_keys
        self.clock = clock
        # key -> (tokens left, when they were counted); oldest use first.
        self.buckets: dict[object, tuple[float, float]] = {}
        self._next_sweep = clock() + SWEEP_SECONDS

    def take(self, key: object) -> float:
        """Take one request from `key`'s bucket: 0 if it had one, else the seconds until
        it will."""
        now = self.clock()
        found = self.buckets.pop(key, None)
        if found is None:
            tokens = self.capacity
        else:
            tokens = min(self.capacity, found[0] + (now - found[1]) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self.buckets[key] = (tokens, now)
        if now >= self._next_sweep or len(self.buckets) > self.max_keys:
            self._sweep(now)
        return wait

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + SWEEP_SECONDS
        full_after = self.capacity / self.rate  # seconds an empty bucket takes to refill
        refilled = []
        # Oldest use first: stop at the first bucket that has not refilled yet.
        for key, (tokens, at) in self.buckets.items():
            if now - at < full_after and tokens + (now - at) * self.rate < self.capacity:
                break
            refilled.append(key)
        for key in refilled:
            del self.buckets[key]
        while len(self.buckets) > self.max_keys:
            del self.buckets[next(iter(self.buckets))]


def bearer_key(authorization: str | None) -> bytes | None:
    """A short, fixed-size key for the token in an `Authorization: Bearer` value."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return hashlib.blake2b(token.strip().encode(), digest_size=16).digest()


class RateLimiter:
    """The per-address and per-token buckets of this node (a limit of 0: none)."""

    def __init__(self, per_token_per_minute: int, per_ip_per_minute: int) -> None:
        self.per_token = TokenBuckets(per_token_per_minute) if per_token_per_minute > 0 else None
        self.per_ip = TokenBuckets(per_ip_per_minute) if per_ip_per_minute > 0 else None

    @property
    def enabled(self) -> bool:
        return self.per_token is not None or self.per_ip is not None

    def check_address(self, client: str) -> float:
        if self.per_ip is None:
            return 0.0
        wait = self.per_ip.take(client)
        if wait:
            REQUESTS_LIMITED.labels("rate_ip").inc()
        return wait

    def check_token(self, authorization: str | None) -> float:
        key = bearer_key(authorization)
        if self.per_token is None or key is None:
            return 0.0
        wait = self.per_token.take(key)
        if wait:
            REQUESTS_LIMITED.labels("rate_token").inc()
        return wait


def retry_after(wait: float) -> int:
    return max(1, math.ceil(wait))


def rate_limited_message(wait: float) -> str:
    return f"Too many requests: retry in {retry_after(wait)} s."


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


class RateLimited:
    """ASGI wrapper of the /graphql endpoint: requests over a limit never reach it.

    A websocket handshake over its address's limit is refused with 429 where the server
    can send an HTTP answer to a handshake (uvicorn can), else closed; its token is
    counted at `connection_init` (web/graphql.py), where it is first known.
    """

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limiter.enabled and scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            wait = self.limiter.check_address(client[0] if client else "")
            if not wait and scope["type"] == "http":
                wait = self.limiter.check_token(_header(scope, b"authorization"))
            if wait:
                await _refuse(scope, send, wait)
                return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, send: Send, wait: float) -> None:
    start, body = json_error(
        429,
        rate_limited_message(wait),
        RATE_LIMITED,
        {"retry-after": str(retry_after(wait))},
    )
    if scope["type"] == "http":
        await send(start)
        await send(body)
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({**start, "type": "websocket.http.response.start"})
        await send({**body, "type": "websocket.http.response.body"})
    else:
        await send({"type": "websocket.close", "code": 1008})
