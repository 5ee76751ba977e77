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
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from broadcaster import Broadcast
from broadcaster._base import Unsubscribed
from sqlalchemy.engine import Row

from common.events import account_channel
from common.metrics import LIVE_MESSAGES, SUBSCRIPTIONS_ACTIVE
from db import event_log
from db.engine import Database
from resolvers.context import Context
from resolvers.positions import Position, encode_cursor

log = logging.getLogger(__name__)

T = TypeVar("T")

# (event id, delivery id): one event of the log, as a subscription needs it.
EventRef = tuple[int, uuid.UUID]


class SharedResults:
    """What lets a live update be executed once for all its subscribers: a GraphQL
    context of its own (fresh loaders, the account's viewer) and the results by
    selection. Every field below `DeliveryUpdate` depends on the account only, never on
    which of its people is watching, so the account's subscribers can share them."""

    __slots__ = ("context", "results")

    def __init__(self, context: Context) -> None:
        self.context = context
        self.results: dict[Hashable, asyncio.Future[Any]] = {}


class LiveUpdate:
    """A delivery's current state after a change, and the position a client has reached
    once it has seen this update."""

    __slots__ = (
        "_view",
        "cursor",
        "delivery",
        "event_ids",
        "position",
        "shared",
        "status_rows",
        "task_id",
    )

    def __init__(
        self,
        delivery: Row[Any],
        status_rows: list[Row[Any]],
        event_ids: tuple[int, ...],
        position: Position,
        shared: SharedResults,
    ) -> None:
        self.delivery = delivery
        # Read by every subscriber's task filter: kept apart from the row.
        self.task_id: uuid.UUID = delivery.task_id
        self.status_rows = status_rows
        self.event_ids = event_ids
        self.position = position
        self.cursor = encode_cursor(position)
        self.shared = shared
        self._view: Any = None

    def at(self, position: Position) -> LiveUpdate:
        """The same update with another position, for one subscriber alone."""
        return LiveUpdate(
            self.delivery,
            self.status_rows,
            self.event_ids,
            position,
            SharedResults(self.shared.context),
        )

    def view(self, build: Callable[[LiveUpdate], T]) -> T:
        """`build(self)`, built once: the object every subscriber receives."""
        if self._view is None:
            self._view = build(self)
        return self._view  # type: ignore[no-any-return]


class DirectSender(Protocol):
    """The transport of the subscription running in this task, when it can take an
    update's shared result as it is (web/shared_results.py)."""

    # The subscription's selection, once it has been executed for a first update.
    selection_key: Hashable | None

    async def send(self, data: Any) -> None: ...


direct_sender: ContextVar[DirectSender | None] = ContextVar("direct_sender", default=None)


async def send_directly(update: LiveUpdate) -> bool:
    """Send `update` straight to this task's subscriber when its selection is being or
    has been executed for it (for another subscriber): no execution of its own, no
    result object, no per-result extension hooks. False when it must take the ordinary
    way (then its execution is the one the others share)."""
    data = await _shared_data(update)
    if data is None:
        LIVE_MESSAGES.labels("executed").inc()
        return False
    sender = direct_sender.get()
    assert sender is not None
    await sender.send(data)
    LIVE_MESSAGES.labels("shared").inc()
    return True


async def _shared_data(update: LiveUpdate) -> Any:
    sender = direct_sender.get()
    if sender is None or sender.selection_key is None:
        return None
    execution = update.shared.results.get(sender.selection_key)
    if execution is None:
        return None
    if not execution.done():
        try:
            await asyncio.shield(execution)
        except Exception:
            return None  # the ordinary way reports it
    if execution.cancelled() or execution.exception() is not None:
        return None
    result = execution.result()
    return None if result.errors else result.data


class Overflow(Exception):
    """A subscriber fell too far behind; it resumes from its last cursor."""


class Listener:
    """One subscription's inbox. `start` is the feed's position when it joined: every
    batch it receives holds only events past it."""

    def __init__(self, context: Context, start: Position, limit: int) -> None:
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


def shared_context(context: Context) -> Context:
    """A context like `context` (same services, viewer, connection) with fresh loaders."""
    return Context(
        services=context.services,
        request=context.request,
        response=None,
        viewer=context.viewer,
        connection_params=context.connection_params,
    )


async def load_updates(
    context: Context, events: Sequence[EventRef]
) -> list[tuple[Row[Any], list[Row[Any]], tuple[int, ...]]]:
    """For the deliveries these events (of the context's account) name: the delivery,
    the deliveries behind its icon, and its events, ordered by its latest event.
    Nothing when the account's plan has no tracking."""
    if not events or not await context.tracking_allowed():
        return []
    by_delivery: dict[uuid.UUID, list[int]] = {}
    for event_id, delivery_id in events:
        by_delivery.setdefault(delivery_id, []).append(event_id)
    account_id = context.require_viewer().account_id
    async with context.db.read() as conn:
        rows = await event_log.deliveries_by_ids(conn, account_id, list(by_delivery))
    # Outside the plan's history window, a delivery is not shown, live or not.
    cutoff = await context.history_cutoff()
    found = [
        row
        for delivery_id, row in rows.items()
        if delivery_id in by_delivery and row.notified_at >= cutoff
    ]
    loaders = context.loaders
    status = await asyncio.gather(
        *(
            loaders.comment_deliveries.load(row.comment_id)
            if row.comment_id is not None
            else loaders.task_deliveries.load(row.task_id)
            for row in found
        )
    )
    loaded = [
        (row, status_rows, tuple(by_delivery[row.id]))
        for row, status_rows in zip(found, status, strict=True)
    ]
    loaded.sort(key=lambda item: item[2][-1])
    return loaded


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
    async def listen(self, context: Context) -> AsyncIterator[Listener]:
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
        try:
            async with self.broadcast.subscribe(account_channel(account_id)) as subscriber:
                subscribed.set_result(None)
                while True:
                    # A change, or a reconnect after which changes may be missing:
                    # either way, read the log.
                    await subscriber.get()
                    self._wake.set()
        except Unsubscribed:
            return
        except Exception as error:
            if not subscribed.done():
                subscribed.set_exception(error)
            raise

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
    loaded: list[tuple[Row[Any], list[Row[Any]], tuple[int, ...]]],
    start: Position,
    visible: list[int],
    settled: set[int],
    context: Context,
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
