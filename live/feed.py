"""The live feed: one reader of the delivery event log per process, for every
`deliveryUpdated` subscription it serves.

A broadcast message only rings the bell ("account A changed"); the feed then reads the
events committed since its position, once, and hands each subscription of the account
the same `LiveUpdate` objects: one per delivery that changed, with its current state and
the cursor that resumes right after it. What a subscriber selects is executed once per
update and selection, not once per subscriber (see `SharedResults`). A lost or late
message costs nothing but latency: the feed also reads the log every `poll_seconds`, and
after a broadcast reconnect.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator

from broadcaster import Broadcast, Event

from common.events import account_channel
from common.metrics import SUBSCRIPTIONS_ACTIVE
from db import event_log
from db.engine import Database
from db.records import DeliveryRow
from live.context import LiveContext, shared_context
from live.listening import listen
from live.positions import Position
from live.updates import (
    EventRef,
    LiveUpdate,
    SharedResults,
    load_updates,
)

log = logging.getLogger(__name__)


class Overflow(Exception):
    """A subscriber fell too far behind; it resumes from its last cursor."""


class Listener:
    """One subscription's inbox. `start` is the feed's position when it joined: every
    batch it receives holds only events past it."""

    def __init__(self, context: LiveContext, start: Position, limit: int) -> None:
        self.context = context
        self.start = start
        self._limit = limit
        self._inbox: asyncio.Queue[list[LiveUpdate] | None] = asyncio.Queue()

    def deliver(self, updates: list[LiveUpdate]) -> None:
        if self._inbox.qsize() >= self._limit:
            self._inbox.put_nowait(None)  # the reader stops here
            return
        self._inbox.put_nowait(updates)

    @property
    def pending(self) -> int:
        """Batches delivered but not read yet."""
        return self._inbox.qsize()

    async def next_batch(self) -> list[LiveUpdate]:
        updates = await self._inbox.get()
        if updates is None:
            raise Overflow
        return updates


class LiveFeed:
    def __init__(
        self,
        db: Database,
        broadcast: Broadcast,
        *,
        poll_seconds: float = 1.0,
        gap_seconds: float = 30.0,
        batch_limit: int = 2000,
        inbox_limit: int = 1000,
    ) -> None:
        self.db = db
        self.broadcast = broadcast
        self.poll_seconds = poll_seconds
        self.gap_seconds = gap_seconds
        self.batch_limit = batch_limit
        self.inbox_limit = inbox_limit
        self.position = Position()
        self._listeners: dict[uuid.UUID, set[Listener]] = {}
        self._doorbells: dict[uuid.UUID, tuple[asyncio.Task[None], asyncio.Future[None]]] = {}
        # When each current gap was first seen; a gap older than gap_seconds is given up.
        self._gap_seen: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._scanning = asyncio.Lock()
        self._active = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    async def aclose(self) -> None:
        self._closed = True
        tasks = [task for task, _ in self._doorbells.values()]
        if self._task is not None:
            tasks.append(self._task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._doorbells.clear()
        self._task = None

    @contextlib.asynccontextmanager
    async def listen(self, context: LiveContext) -> AsyncIterator[Listener]:
        """Updates of the context viewer's account from now on, in batches."""
        account_id = context.require_viewer().account_id
        # Joined between two reads of the log, never during one: a read that began
        # before would move the position past events it did not load for this account.
        async with self._scanning:
            await self._activate()
            listener = Listener(context, self.position, self.inbox_limit)
            self._listeners.setdefault(account_id, set()).add(listener)
        SUBSCRIPTIONS_ACTIVE.inc()
        try:
            await self._ring_for(account_id)
            yield listener
        finally:
            SUBSCRIPTIONS_ACTIVE.dec()
            listeners = self._listeners.get(account_id, set())
            listeners.discard(listener)
            if not listeners:
                self._listeners.pop(account_id, None)
                task, _ = self._doorbells.pop(account_id, (None, None))
                if task is not None:
                    task.cancel()
            if not self._listeners:
                self._active = False

    async def _activate(self) -> None:
        if not self._active:
            # Nobody was listening, so nobody read the log: start from its end.
            async with self.db.read() as conn:
                high = await event_log.latest_event_id(conn)
            self.position = Position(high)
            self._gap_seen.clear()
            self._active = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="live-feed")

    async def _ring_for(self, account_id: uuid.UUID) -> None:
        if account_id not in self._doorbells:
            subscribed = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(
                self._doorbell(account_id, subscribed), name=f"live-feed-doorbell-{account_id}"
            )
            self._doorbells[account_id] = (task, subscribed)
        await asyncio.shield(self._doorbells[account_id][1])

    async def _doorbell(self, account_id: uuid.UUID, subscribed: asyncio.Future[None]) -> None:
        async def ring(_: Event) -> None:
            # A change, or a reconnect after which changes may be missing: either way,
            # read the log.
            self._wake.set()

        await listen(self.broadcast, account_channel(account_id), subscribed, ring)

    async def _run(self) -> None:
        while not self._closed:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
            # cancellation that aclose() sends when the bell rings at the same moment.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                more = await self.scan()
            except Exception:
                log.exception("live feed: reading the delivery event log failed")
                await asyncio.sleep(self.poll_seconds)
                continue
            if more:
                self._wake.set()

    async def scan(self) -> bool:
        """Read the log past the position once and deliver what changed; True when
        there may be more to read at once."""
        async with self._scanning:
            if not self._listeners:
                return False
            start = self.position
            async with self.db.read() as conn:
                rows = await event_log.events_after(conn, start.high, start.gaps, self.batch_limit)
            visible = [row.id for row in rows]
            end = start.advance(visible, visible[-1] if visible else start.high)
            settled = self._settle(end)
            by_account: dict[uuid.UUID, list[EventRef]] = {}
            for row in rows:
                if row.account_id in self._listeners:
                    by_account.setdefault(row.account_id, []).append((row.id, row.delivery_id))
            for account_id, events in by_account.items():
                listeners = self._listeners.get(account_id)
                if not listeners:
                    continue  # they left while another account's updates were read
                context = shared_context(next(iter(listeners)).context)
                loaded = await load_updates(context, events)
                updates = _positioned(loaded, start, visible, settled, context)
                for listener in self._listeners.get(account_id, ()) if updates else ():
                    listener.deliver(updates)
            self.position = end.without_gaps(settled)
            return len(rows) == self.batch_limit

    def _settle(self, position: Position) -> set[int]:
        """Note when new gaps appeared; returns those waited on for too long."""
        now = time.monotonic()
        for gap in position.gaps:
            self._gap_seen.setdefault(gap, now)
        for gap in [gap for gap in self._gap_seen if gap not in position.gaps]:
            del self._gap_seen[gap]
        settled = {gap for gap, seen in self._gap_seen.items() if now - seen > self.gap_seconds}
        for gap in settled:
            log.info("live feed: event %d never became visible; taken as rolled back", gap)
            del self._gap_seen[gap]
        return settled


def _positioned(
    loaded: list[tuple[DeliveryRow, list[DeliveryRow], tuple[int, ...]]],
    start: Position,
    visible: list[int],
    settled: set[int],
    context: LiveContext,
) -> list[LiveUpdate]:
    """Live updates in order, each at the position reached once it is seen: `start`
    plus everything this read saw up to the update's latest event."""
    updates: list[LiveUpdate] = []
    position = start
    done = 0
    for delivery, status_rows, event_ids in loaded:
        latest = event_ids[-1]
        upto = bisect.bisect_right(visible, latest)
        position = position.advance(visible[done:upto], latest).without_gaps(settled)
        done = upto
        updates.append(
            LiveUpdate(delivery, status_rows, event_ids, position, SharedResults(context))
        )
    return updates
