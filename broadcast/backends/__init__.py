"""Broadcast backends that say when their connection drops, and can reconnect.

broadcaster's own backends never report a lost connection: the listener task dies or
waits forever, and every subscriber hangs. Ours raise `ConnectionLost` from
`next_published()` (and from `subscribe`/`unsubscribe`), and `reconnect(channels)`
opens a fresh connection listening on those channels; `broadcast.Broadcast`
drives them. Picked by URL scheme; a driver (redis, asyncpg) is imported only when used.
"""

from __future__ import annotations

from urllib.parse import urlparse

from broadcast.backends.base import (
    CLIENT_NAME,
    KEEPALIVE_SECONDS,
    ConnectionLost,
    ReconnectingBackend,
)
from broadcast.backends.memory import MemoryBackend
from broadcast.backends.postgres import PostgresBackend
from broadcast.backends.redis import RedisBackend

__all__ = [
    "CLIENT_NAME",
    "KEEPALIVE_SECONDS",
    "ConnectionLost",
    "MemoryBackend",
    "PostgresBackend",
    "ReconnectingBackend",
    "RedisBackend",
    "create_backend",
]


def create_backend(url: str) -> ReconnectingBackend:
    scheme = urlparse(url).scheme
    if scheme == "memory":
        return MemoryBackend(url)
    if scheme in {"redis", "rediss"}:
        return RedisBackend(url)
    if scheme in {"postgres", "postgresql"} or scheme.startswith("postgresql+"):
        return PostgresBackend(url)
    raise ValueError(f"unsupported BROADCAST_URL scheme {scheme!r}")
