"""One process: publishing is handing the message to our own listener."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from broadcaster import Event

from broadcast.backends.base import ReconnectingBackend


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
