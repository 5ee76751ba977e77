"""Recording opens, and keeping them through a database outage.

A pixel is always answered, so when the database cannot take an open the hit goes into
a bounded in-memory buffer with its original time, and a background task writes the
buffer out once the database answers again. Past the bound, opens are dropped, counted
and logged: memory stays bounded however long the outage lasts.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging

from broadcaster import Broadcast

from common.broadcast import publish_changes
from common.metrics import PIXEL_BUFFERED, PIXEL_HITS, PIXEL_OPENS_DROPPED
from db.deliveries import record_open
from db.engine import Database

log = logging.getLogger(__name__)


class OpenRecorder:
    def __init__(
        self,
        db: Database,
        broadcast: Broadcast,
        *,
        capacity: int,
        retry_seconds: float = 1.0,
    ) -> None:
        self.db = db
        self.broadcast = broadcast
        self.retry_seconds = retry_seconds
        self._buffer: collections.deque[tuple[str, dt.datetime]] = collections.deque()
        self._capacity = capacity
        self._dropped = 0
        self._flushing: asyncio.Task[None] | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def dropped(self) -> int:
        return self._dropped

    async def record(self, pixel_id: str, at: dt.datetime) -> None:
        """Record an open now, or buffer it if the database is away. Never raises."""
        if self._buffer:
            # Keep the order: an outage is still being written out.
            self._enqueue(pixel_id, at)
            return
        try:
            await self._write(pixel_id, at)
        except Exception as error:
            log.warning("could not record an open (%s); buffering it", type(error).__name__)
            self._enqueue(pixel_id, at)
        else:
            PIXEL_HITS.labels("recorded").inc()

    async def _write(self, pixel_id: str, at: dt.datetime) -> None:
        async with self.db.write() as conn:
            changes = await record_open(conn, pixel_id, at)
        await publish_changes(self.broadcast, changes)

    def _enqueue(self, pixel_id: str, at: dt.datetime) -> None:
        if len(self._buffer) >= self._capacity:
            self._dropped += 1
            PIXEL_OPENS_DROPPED.inc()
            log.error(
                "open buffer full (%d): dropped an open (%d dropped so far)",
                self._capacity,
                self._dropped,
            )
            return
        self._buffer.append((pixel_id, at))
        PIXEL_HITS.labels("buffered").inc()
        PIXEL_BUFFERED.set(len(self._buffer))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name="pixel-buffer-flush")

    async def _flush(self) -> None:
        while self._buffer:
            pixel_id, at = self._buffer[0]
            try:
                await self._write(pixel_id, at)
            except Exception as error:
                log.info("database still unavailable (%s); retrying", type(error).__name__)
                await asyncio.sleep(self.retry_seconds)
                continue
            self._buffer.popleft()
            PIXEL_BUFFERED.set(len(self._buffer))
        log.info("open buffer written out")

    async def drain(self) -> None:
        """Wait until the buffer is written (tests, shutdown)."""
        if self._flushing is not None:
            await self._flushing

    async def aclose(self) -> None:
        if self._flushing is not None and not self._flushing.done():
            self._flushing.cancel()
            if self._buffer:
                log.error("shutting down with %d unrecorded opens", len(self._buffer))
