"""Recording opens durably, many per transaction, and keeping them through a database
outage.

Group commit: a hit joins the batch being gathered, and one transaction (one statement on
PostgreSQL, db/opens.py) takes a whole batch. While one batch commits the next one
gathers, so under load batches grow instead of transactions queueing up.

A hit is answered at once, before its batch commits, while few opens are uncommitted
(`answer_ahead`); past that, a hit waits for its own commit, so the database sets the
pace and memory stays bounded. Waiting for every commit would guarantee nobody anything:
a pixel's client never learns whether its open was recorded and does not retry, so the
opens in flight when a process dies are lost either way (ADR 0013).

A pixel is always answered, so when the database cannot take a batch its opens go into a
bounded in-memory buffer with their original times, and a background task writes the
buffer out once the database answers again. Past the bound, opens are dropped, counted
and logged: memory stays bounded however long the outage lasts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable

from broadcaster import Broadcast

from broadcast import publish_changes
from common.events import DeliveryChanged
from common.metrics import (
    PIXEL_BATCH,
    PIXEL_BUFFERED,
    PIXEL_COMMIT_SECONDS,
    PIXEL_HITS,
    PIXEL_OPENS,
    PIXEL_OPENS_DROPPED,
    PIXEL_UNCOMMITTED,
)
from db.engine import Database
from db.open_writers import BatchWriter, writer_for
from db.opens import Open

log = logging.getLogger(__name__)

# The most opens one transaction takes (a bigger backlog commits in several).
MAX_BATCH = 2000
# A batch costs the database much the same for one open as for a hundred (measured on
# PostgreSQL: 100 us of server CPU per open in batches of 20, 48 in batches of 200). So
# under load, once a batch held BUSY_BATCH opens or more, a committer gathers for a moment
# (`commit_window`) before it takes one smaller than FULL_BATCH; nobody waits for it (hits
# are answered at once). At a trickle it commits at once, so that a live dashboard sees
# an open within milliseconds.
BUSY_BATCH = 32
FULL_BATCH = 500
# How many waiting opens make it worth starting another transaction beside the running
# ones: only when one committer cannot keep up.
CROWD = FULL_BATCH
COMMIT_WINDOW_SECONDS = 0.02
# How many opens may be answered before they are committed; past it, hits wait. About
# half a second of a busy server's hits: enough to ride out a slow disk flush (single
# commits of 100-500 ms were seen on a VM, during which 2,000 filled in a tenth of a
# second and every hit waited), and no more than the outage buffer holds by default.
ANSWER_AHEAD = 10_000


class OpenRecorder:
    def __init__(
        self,
        db: Database,
        broadcast: Broadcast,
        *,
        capacity: int,
        retry_seconds: float = 1.0,
        commits_in_flight: int = 4,
        commit_window: float = COMMIT_WINDOW_SECONDS,
        answer_ahead: int = ANSWER_AHEAD,
        writers: Callable[[], BatchWriter] | None = None,
    ) -> None:
        self.db = db
        self.broadcast = broadcast
        self.retry_seconds = retry_seconds
        self._buffer: collections.deque[Open] = collections.deque()
        self._capacity = capacity
        self._dropped = 0
        self._flushing: asyncio.Task[None] | None = None
        self._gathering: list[Open] = []
        # The commit of the opens gathering now, for the hits that wait for it (made
        # only when one does).
        self._gathered: asyncio.Future[None] | None = None
        # Opens taken and neither committed nor buffered yet.
        self._uncommitted = 0
        self._answer_ahead = answer_ahead
        self._window = commit_window
        self._last_batch = 0  # how many opens the latest batch took
        # Transactions in flight at once: one on SQLite (one writer anyway); a few on
        # PostgreSQL, so that a batch gathers while others commit.
        self._max_committers = 1 if db.is_sqlite else commits_in_flight
        self._committers: set[asyncio.Task[None]] = set()
        # The pixels of the batches committing now. A batch leaves their opens for a
        # later one: batches in flight together then touch disjoint deliveries (a
        # delivery has one message, a message one pixel) and never wait for each
        # other's row locks, and a pixel's opens commit in the order they came.
        self._pixels_in_flight: set[str] = set()
        # One writer (a connection of its own) per transaction in flight.
        self._new_writer = writers or (lambda: writer_for(db))
        self._idle_writers: list[BatchWriter] = []

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def uncommitted(self) -> int:
        return self._uncommitted

    async def record(self, open_: Open) -> None:
        """Take an open for the next commit, returning at once unless more than
        `answer_ahead` opens are uncommitted, in which case it returns once this one is
        committed (or buffered). If the database is away, buffer it. Never raises."""
        if self._buffer:
            # Keep the order: an outage is still being written out.
            self._enqueue(open_)
            return
        self._gathering.append(open_)
        self._uncommitted += 1
        # Another transaction only when many wait: fewer, fuller batches cost the least.
        if not self._committers or (
            len(self._committers) < self._max_committers and len(self._gathering) >= CROWD
        ):
            committer = asyncio.create_task(self._commit_batches(), name="pixel-commit")
            self._committers.add(committer)
        if self._uncommitted > self._answer_ahead:
            if self._gathered is None:
                self._gathered = asyncio.get_running_loop().create_future()
            # A client that hangs up cancels its own wait only: the batch keeps its open.
            await asyncio.shield(self._gathered)

    async def _commit_batches(self) -> None:
        try:
            await self._commit_gathered()
        finally:
            # At once, not in a done-callback later: a hit arriving after the last look
            # at the batch must find no committer left, and start one.
            task = asyncio.current_task()
            if task is not None:
                self._committers.discard(task)

    async def _commit_gathered(self) -> None:
        while True:
            # Under load, gather for a moment unless a batch is full already; otherwise
            # just let the hits that arrive in one loop iteration share a batch.
            busy = self._last_batch >= BUSY_BATCH and len(self._gathering) < FULL_BATCH
            await asyncio.sleep(self._window if busy else 0)
            opens = self._take()
            if not opens:
                # Nothing, or only opens of pixels in flight: their committers take them.
                return
            self._last_batch = len(opens)
            # Hits waiting for the gathered opens are released by the batch that takes
            # the last of them.
            committed = None
            if not self._gathering:
                committed, self._gathered = self._gathered, None
            PIXEL_UNCOMMITTED.set(self._uncommitted)
            changes: list[DeliveryChanged] = []
            try:
                changes = await self._write_batch(opens)
            except Exception as error:
                log.warning(
                    "could not record %d open(s) (%s); buffering them",
                    len(opens),
                    type(error).__name__,
                )
                for open_ in opens:
                    self._enqueue(open_)
            else:
                PIXEL_HITS.labels("recorded").inc(len(opens))
                PIXEL_BATCH.observe(len(opens))
            finally:
                self._pixels_in_flight.difference_update(open_.pixel_id for open_ in opens)
                self._uncommitted -= len(opens)
                PIXEL_UNCOMMITTED.set(self._uncommitted)
                if committed is not None and not committed.done():
                    committed.set_result(None)
            await publish_changes(self.broadcast, changes)

    def _take(self) -> list[Open]:
        """Up to MAX_BATCH gathered opens, in order, but none of a pixel in flight."""
        if not self._pixels_in_flight:
            opens, self._gathering = self._gathering[:MAX_BATCH], self._gathering[MAX_BATCH:]
        else:
            opens, left = [], []
            for open_ in self._gathering:
                if len(opens) < MAX_BATCH and open_.pixel_id not in self._pixels_in_flight:
                    opens.append(open_)
                else:
                    left.append(open_)
            self._gathering = left
        self._pixels_in_flight.update(open_.pixel_id for open_ in opens)
        return opens

    async def _write_batch(self, opens: list[Open]) -> list[DeliveryChanged]:
        writer = self._idle_writers.pop() if self._idle_writers else self._new_writer()
        started = time.perf_counter()
        try:
            recorded = await writer.write(opens)
        except BaseException:
            await writer.aclose()
            raise
        PIXEL_COMMIT_SECONDS.observe(time.perf_counter() - started)
        self._idle_writers.append(writer)
        for confidence, count in recorded.confidences.items():
            PIXEL_OPENS.labels(confidence).inc(count)
        return recorded.changes

    async def _write(self, opens: list[Open]) -> None:
        changes = await self._write_batch(opens)
        await publish_changes(self.broadcast, changes)

    def _enqueue(self, open_: Open) -> None:
        if len(self._buffer) >= self._capacity:
            self._dropped += 1
            PIXEL_OPENS_DROPPED.inc()
            log.error(
                "open buffer full (%d): dropped an open (%d dropped so far)",
                self._capacity,
                self._dropped,
            )
            return
        self._buffer.append(open_)
        PIXEL_HITS.labels("buffered").inc()
        PIXEL_BUFFERED.set(len(self._buffer))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name="pixel-buffer-flush")

    async def _flush(self) -> None:
        while self._buffer:
            chunk = [self._buffer[i] for i in range(min(len(self._buffer), MAX_BATCH))]
            try:
                await self._write(chunk)
            except Exception as error:
                log.info("database still unavailable (%s); retrying", type(error).__name__)
                await asyncio.sleep(self.retry_seconds)
                continue
            for _ in chunk:
                self._buffer.popleft()
            PIXEL_BUFFERED.set(len(self._buffer))
        log.info("open buffer written out")

    async def settle(self) -> None:
        """Wait until every open taken so far is committed or buffered."""
        while running := [task for task in self._committers if not task.done()]:
            await asyncio.gather(*running, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until every open taken so far is committed or buffered, and the buffer
        is written (tests, shutdown)."""
        await self.settle()
        if self._flushing is not None:
            await self._flushing

    async def aclose(self) -> None:
        if running := [task for task in self._committers if not task.done()]:
            # Opens answered and not yet committed must not be lost: let their batches
            # commit.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*running), timeout=10)
            if self._uncommitted:
                log.error("shutting down with %d uncommitted opens", self._uncommitted)
        if self._flushing is not None and not self._flushing.done():
            self._flushing.cancel()
            if self._buffer:
                log.error("shutting down with %d unrecorded opens", len(self._buffer))
        writers, self._idle_writers = self._idle_writers, []
        for writer in writers:
            await writer.aclose()
