"""Broadcast backends that say when their connection drops, and can reconnect.

broadcaster's own backends never report a lost connection: the listener task dies or
waits forever, and every subscriber hangs. Ours raise `ConnectionLost` from
`next_published()` (and from `subscribe`/`unsubscribe`), and `reconnect(channels)`
opens a fresh connection listening on those channels; `common.broadcast.Broadcast`
drives them. Picked by URL scheme, imported lazily, like broadcaster's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from broadcaster import BroadcastBackend, Event

if TYPE_CHECKING:
    import asyncpg
    from redis import asyncio as aioredis
    from redis.asyncio.client import PubSub

log = logging.getLogger(__name__)

# How often an idle listening connection is checked, and how long a check may take.
KEEPALIVE_SECONDS = 5.0
# How our connections name themselves to the server (pg_stat_activity, CLIENT LIST).
CLIENT_NAME = "beacon-broadcast"


def connection_name() -> str:
    """This backend's listening connection, told apart from other processes' ones."""
    return f"{CLIENT_NAME}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class ConnectionLost(Exception):
    """The listening connection is gone; messages published meanwhile are lost."""


class ReconnectingBackend(BroadcastBackend):
    """broadcaster's backend interface, plus `reconnect`."""

    scheme = "?"

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = connection_name()

    async def reconnect(self, channels: Sequence[str]) -> None:
        raise NotImplementedError


def create_backend(url: str) -> ReconnectingBackend:
    scheme = urlparse(url).scheme
    if scheme == "memory":
        return MemoryBackend(url)
    if scheme in {"redis", "rediss"}:
        return RedisBackend(url)
    if scheme in {"postgres", "postgresql"} or scheme.startswith("postgresql+"):
        return PostgresBackend(url)
    raise ValueError(f"unsupported BROADCAST_URL scheme {scheme!r}")


class MemoryBackend(ReconnectingBackend):
    """One process: publishing is handing the message to our own listener."""

    scheme = "memory"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._channels: set[str] = set()
        self._published: asyncio.Queue[Event] = asyncio.Queue()

    async def connect(self) -> None:
        pass

    async def disconnect(self) -> None:
        pass

    async def reconnect(self, channels: Sequence[str]) -> None:
        self._channels = set(channels)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def publish(self, channel: str, message: Any) -> None:
        self._published.put_nowait(Event(channel, message))

    async def next_published(self) -> Event:
        while True:
            event = await self._published.get()
            if event.channel in self._channels:
                return event


class RedisBackend(ReconnectingBackend):
    """Redis PUBLISH/SUBSCRIBE. Publishing goes through a pool (redis-py retries it on a
    fresh connection); the subscriber connection is ours to watch, so redis-py is told
    not to reconnect it behind our back, which would hide the gap."""

    scheme = "redis"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._publisher: aioredis.Redis | None = None
        self._subscriber: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._channels: set[str] = set()
        self._has_channels = asyncio.Event()

    async def connect(self) -> None:
        from redis import asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._publisher = aioredis.Redis.from_url(self.url)
        self._subscriber = aioredis.Redis.from_url(
            self.url, retry=Retry(NoBackoff(), 0), socket_keepalive=True, client_name=self.name
        )
        self._pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)

    async def disconnect(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        for client in (self._subscriber, self._publisher):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def reconnect(self, channels: Sequence[str]) -> None:
        assert self._subscriber is not None, "connect() first"
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        self._pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
        self._channels = set(channels)
        if self._channels:
            await self._pubsub.subscribe(*self._channels)
            self._has_channels.set()

    async def subscribe(self, channel: str) -> None:
        assert self._pubsub is not None, "connect() first"
        try:
            await self._pubsub.subscribe(channel)
        except (OSError, ConnectionError, _redis_errors()) as error:
            raise ConnectionLost(str(error)) from error
        finally:
            # Registered either way: a reconnect subscribes to it.
            self._channels.add(channel)
            self._has_channels.set()

    async def unsubscribe(self, channel: str) -> None:
        assert self._pubsub is not None, "connect() first"
        self._channels.discard(channel)
        try:
            await self._pubsub.unsubscribe(channel)
        except (OSError, ConnectionError, _redis_errors()) as error:
            raise ConnectionLost(str(error)) from error

    async def publish(self, channel: str, message: Any) -> None:
        assert self._publisher is not None, "connect() first"
        await self._publisher.publish(channel, message)

    async def next_published(self) -> Event:
        idle = 0.0
        while True:
            pubsub = self._pubsub
            assert pubsub is not None, "connect() first"
            if not pubsub.subscribed:
                # redis-py cannot read a connection that subscribes to nothing.
                self._has_channels.clear()
                await self._has_channels.wait()
                continue
            try:
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    idle += 1.0
                    if idle >= KEEPALIVE_SECONDS:
                        # The answer comes back as a "pong" message on this connection.
                        await pubsub.ping()
                    if idle >= 3 * KEEPALIVE_SECONDS:
                        raise ConnectionLost("no answer to PING")
                    continue
            except (OSError, ConnectionError, _redis_errors()) as error:
                raise ConnectionLost(f"{type(error).__name__}: {error}") from error
            idle = 0.0
            if message["type"] == "message":
                return Event(channel=message["channel"].decode(), message=message["data"].decode())


def _redis_errors() -> type[Exception]:
    from redis.exceptions import ConnectionError as RedisConnectionError

    return RedisConnectionError


class PostgresBackend(ReconnectingBackend):
    """PostgreSQL LISTEN/NOTIFY. One connection listens; NOTIFY goes through a small
    pool, since an asyncpg connection runs one statement at a time and publishers are
    many. Channel names are identifiers: at most 63 bytes."""

    scheme = "postgres"

    def __init__(self, url: str) -> None:
        super().__init__(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        self._listener: asyncpg.Connection | None = None
        self._pool: asyncpg.Pool | None = None
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._keepalive: asyncio.Task[None] | None = None
        # An asyncpg connection runs one statement at a time.
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        import asyncpg

        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=1,
            max_size=4,
            server_settings={"application_name": f"{self.name}-publish"},
        )
        await self._listen_on([])

    async def _listen_on(self, channels: Sequence[str]) -> None:
        import asyncpg

        conn = await asyncpg.connect(
            self.url,
            timeout=KEEPALIVE_SECONDS,
            server_settings={"application_name": self.name},
        )
        try:
            conn.add_termination_listener(self._on_termination)
            for channel in channels:
                await conn.add_listener(channel, self._on_notification)
        except BaseException:
            await conn.close(timeout=1)
            raise
        self._listener = conn
        self._keepalive = asyncio.create_task(self._check(conn), name="broadcast-keepalive")

    async def disconnect(self) -> None:
        await self._drop_listener()
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.close()

    async def _drop_listener(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        conn, self._listener = self._listener, None
        if conn is not None:
            conn.remove_termination_listener(self._on_termination)
            with contextlib.suppress(Exception):
                await conn.close(timeout=1)

    async def reconnect(self, channels: Sequence[str]) -> None:
        await self._drop_listener()
        # What the old connection reported is stale now.
        self._events = asyncio.Queue()
        await self._listen_on(channels)

    async def subscribe(self, channel: str) -> None:
        _check_identifier(channel)
        await self._on_listener(lambda conn: conn.add_listener(channel, self._on_notification))

    async def unsubscribe(self, channel: str) -> None:
        await self._on_listener(lambda conn: conn.remove_listener(channel, self._on_notification))

    async def _on_listener(self, action: Any) -> None:
        conn = self._listener
        if conn is None or conn.is_closed():
            raise ConnectionLost("the listening connection is closed")
        try:
            async with self._lock:
                await action(conn)
        except Exception as error:
            if conn.is_closed():
                raise ConnectionLost(str(error)) from error
            raise

    async def publish(self, channel: str, message: Any) -> None:
        import asyncpg

        _check_identifier(channel)
        assert self._pool is not None, "connect() first"
        for attempt in (1, 2):
            try:
                async with self._pool.acquire() as conn:
                    await conn.execute("SELECT pg_notify($1, $2)", channel, message)
                return
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
                # A pooled connection the server dropped: the pool replaces it.
                if attempt == 2:
                    raise

    async def next_published(self) -> Event:
        event = await self._events.get()
        if event is None:
            raise ConnectionLost("the listening connection was closed")
        return event

    def _on_notification(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        self._events.put_nowait(Event(channel=channel, message=payload))

    def _on_termination(self, _conn: Any) -> None:
        self._events.put_nowait(None)

    async def _check(self, conn: asyncpg.Connection) -> None:
        """A dead peer sends nothing: ask now and then, and give up on a silent one."""
        while not conn.is_closed():
            await asyncio.sleep(KEEPALIVE_SECONDS)
            try:
                async with self._lock:
                    await conn.fetchval("SELECT 1", timeout=KEEPALIVE_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("broadcast connection check failed: %s", type(error).__name__)
                self._events.put_nowait(None)
                return


def _check_identifier(channel: str) -> None:
    if len(channel.encode()) > 63:
        raise ValueError(f"PostgreSQL channel names are at most 63 bytes: {channel!r}")
