"""PostgreSQL LISTEN/NOTIFY, with a listening connection we watch ourselves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from broadcaster import Event

from broadcast.backends.base import (
    KEEPALIVE_SECONDS,
    ConnectionLost,
    ReconnectingBackend,
)

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)


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
