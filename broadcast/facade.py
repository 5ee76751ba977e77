"""The process's broadcaster: picked from BROADCAST_URL, shared by publishers and
subscriptions.

`Broadcast` keeps broadcaster's API and fixes what DESIGN.md section 7 lists:

- a dropped Redis or PostgreSQL connection is reopened (with backoff) and every channel
  still subscribed is subscribed again; each subscriber then gets a `Resync` event,
  since whatever was published in between is lost and must be read from the database;
- two concurrent first subscriptions to a channel both receive its messages (broadcaster
  registers the second one over the first).

Channel names get the instance's `prefix` on the wire, so that several deployments (or
test runs) can share one Redis without hearing each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import broadcaster
from broadcaster import Event
from broadcaster._base import Subscriber

from broadcast.backends import ConnectionLost, ReconnectingBackend, create_backend
from common.events import DeliveryChanged
from common.metrics import BROADCAST_RECONNECTS

log = logging.getLogger(__name__)

__all__ = ["Broadcast", "Event", "Resync", "Subscriber", "create_broadcast", "publish_changes"]

RECONNECT_FIRST_DELAY = 0.05
RECONNECT_MAX_DELAY = 5.0


class Resync(Event):
    """Not a message: the connection was lost and is back. Whatever was published
    meanwhile did not arrive; read the current state again."""

    def __init__(self, channel: str) -> None:
        super().__init__(channel=channel, message="")


class Broadcast(broadcaster.Broadcast):
    def __init__(self, backend: ReconnectingBackend, *, prefix: str = "") -> None:
        super().__init__(backend=backend)
        self.backend: ReconnectingBackend = backend
        self.prefix = prefix
        self.reconnects = 0
        # Held while the backend subscribes, unsubscribes or reconnects: the set of
        # channels it listens on always matches `_subscribers`.
        self._lock = asyncio.Lock()
        self._connected = False
        self._listening: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        await self.backend.connect()
        self._connected = True
        self._listening = asyncio.create_task(self._listen(), name="broadcast-listener")

    async def disconnect(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
            self._listening = None
        self._connected = False
        await self.backend.disconnect()

    async def publish(self, channel: str, message: str) -> None:
        await self.backend.publish(self.prefix + channel, message)

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscriber]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        async with self._lock:
            queues = self._subscribers.get(channel)
            if queues is None:
                await self._backend_call(self.backend.subscribe, channel)
                queues = self._subscribers[channel] = set()
            queues.add(queue)
        try:
            yield Subscriber(queue)
        finally:
            # Shielded: a cancelled subscriber must still leave the backend consistent.
            await asyncio.shield(self._leave(channel, queue))

    async def _leave(self, channel: str, queue: asyncio.Queue[Event | None]) -> None:
        async with self._lock:
            queues = self._subscribers.get(channel, set())
            queues.discard(queue)
            if not queues and channel in self._subscribers:
                del self._subscribers[channel]
                await self._backend_call(self.backend.unsubscribe, channel)
        queue.put_nowait(None)

    async def _backend_call(self, call: Callable[[str], Awaitable[None]], channel: str) -> None:
        """Subscribe or unsubscribe now, or leave it to the reconnect when the connection
        is down (the listener task notices and reconnects with `_subscribers`)."""
        if not self._connected:
            return
        try:
            await call(self.prefix + channel)
        except ConnectionLost as error:
            log.warning("broadcast connection lost while (un)subscribing: %s", error)

    async def _listen(self) -> None:
        prefix_length = len(self.prefix)
        while True:
            try:
                event = await self.backend.next_published()
            except ConnectionLost as error:
                log.warning("broadcast connection lost (%s); reconnecting", error)
                await self._reconnect()
                continue
            except Exception:
                # Whatever it was, a listener that stops would leave every subscriber
                # waiting forever: start over on a fresh connection.
                log.exception("broadcast listener failed; reconnecting")
                await self._reconnect()
                continue
            if not event.channel.startswith(self.prefix):
                continue
            channel = event.channel[prefix_length:]
            for queue in self._subscribers.get(channel, ()):
                queue.put_nowait(Event(channel, event.message))

    async def _reconnect(self) -> None:
        self._connected = False
        delay = RECONNECT_FIRST_DELAY
        while True:
            async with self._lock:
                channels = list(self._subscribers)
                try:
                    await self.backend.reconnect([self.prefix + name for name in channels])
                except Exception as error:
                    log.warning(
                        "broadcast reconnect failed (%s: %s); retrying in %.2f s",
                        type(error).__name__,
                        error,
                        delay,
                    )
                else:
                    self._connected = True
            if self._connected:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY)
        self.reconnects += 1
        BROADCAST_RECONNECTS.labels(self.backend.scheme).inc()
        log.info("broadcast reconnected; %d channel(s) subscribed again", len(channels))
        for name, queues in self._subscribers.items():
            for queue in queues:
                queue.put_nowait(Resync(name))


# Our longest channel name (common/events.py) is 50 bytes; PostgreSQL's limit is 63.
_LONGEST_CHANNEL = len("beacon.deliveries.") + 32
_POSTGRES_CHANNEL_BYTES = 63


def create_broadcast(url: str, *, prefix: str = "") -> Broadcast:
    """A broadcast for `memory://`, `redis://…` or `postgres://…`."""
    backend = create_backend(url)
    if backend.scheme == "postgres" and (
        len(prefix.encode()) + _LONGEST_CHANNEL > _POSTGRES_CHANNEL_BYTES
    ):
        raise ValueError(
            "BROADCAST_PREFIX is too long for PostgreSQL channel names: at most "
            f"{_POSTGRES_CHANNEL_BYTES - _LONGEST_CHANNEL} bytes"
        )
    return Broadcast(backend, prefix=prefix)


async def publish_changes(
    broadcast: broadcaster.Broadcast, changes: Iterable[DeliveryChanged]
) -> None:
    """Publish after the commit, one message per account: the message only rings the
    bell (subscriptions read what changed from the delivery event log), so a batch of
    changes to one account needs one. A failed publish is logged, not raised: the
    database already holds the truth and clients repair from it on their next read."""
    latest = {change.channel: change for change in changes}
    for channel, change in latest.items():
        try:
            await broadcast.publish(channel=channel, message=change.encode())
        except Exception:
            log.exception("could not publish a delivery change")
