"""Redis PUBLISH/SUBSCRIBE, with a subscriber connection we watch ourselves."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from broadcaster import Event

from broadcast.backends.base import KEEPALIVE_SECONDS, ConnectionLost, ReconnectingBackend

if TYPE_CHECKING:
    from redis import asyncio as aioredis
    from redis.asyncio.client import PubSub


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
