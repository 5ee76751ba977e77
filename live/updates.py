"""Live updates: what the live feed hands subscriptions, and how one update is executed
and sent once for all the subscribers that select the same fields."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Hashable, Sequence
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from common.metrics import LIVE_MESSAGES
from db import event_log
from db.records import DeliveryRow
from live.context import LiveContext
from live.positions import Position, encode_cursor

T = TypeVar("T")

# (event id, delivery id): one event of the log, as a subscription needs it.
EventRef = tuple[int, uuid.UUID]


class SharedResults:
    """What lets a live update be executed once for all its subscribers: a GraphQL
    context of its own (fresh loaders, the account's viewer) and the results by
    selection. Every field below `DeliveryUpdate` depends on the account only, never on
    which of its people is watching, so the account's subscribers can share them."""

    __slots__ = ("context", "results")

    def __init__(self, context: LiveContext) -> None:
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
        delivery: DeliveryRow,
        status_rows: list[DeliveryRow],
        event_ids: tuple[int, ...],
        position: Position,
        shared: SharedResults,
    ) -> None:
        self.delivery = delivery
        # Read by every subscriber's task filter: kept apart from the row.
        self.task_id: uuid.UUID = task_of(delivery)
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
    update's shared result as it is (live/shared_results.py)."""

    # The subscription's selection, once it has been executed for a first update.
    selection_key: Hashable | None

    async def send(self, data: Any) -> None: ...


direct_sender: ContextVar[DirectSender | None] = ContextVar("direct_sender", default=None)

# Looked up once: `labels()` costs more than the increment, once per message.
_EXECUTED = LIVE_MESSAGES.labels("executed")
_SHARED = LIVE_MESSAGES.labels("shared")


async def send_directly(update: LiveUpdate) -> bool:
    """Send `update` straight to this task's subscriber when its selection is being or
    has been executed for it (for another subscriber): no execution of its own, no
    result object, no per-result extension hooks. False when it must take the ordinary
    way (then its execution is the one the others share)."""
    sender = direct_sender.get()
    data = await _shared_data(update, sender)
    if data is None:
        _EXECUTED.inc()
        return False
    assert sender is not None
    await sender.send(data)
    _SHARED.inc()
    return True


async def _shared_data(update: LiveUpdate, sender: DirectSender | None) -> Any:
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


def task_of(delivery: DeliveryRow) -> uuid.UUID:
    """The task of a delivery the live feed shows (load_updates leaves out invitations'
    emails, the only deliveries without one)."""
    assert delivery.task_id is not None, "an invitation's email is no task's update"
    return delivery.task_id


async def load_updates(
    context: LiveContext, events: Sequence[EventRef]
) -> list[tuple[DeliveryRow, list[DeliveryRow], tuple[int, ...]]]:
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
        if delivery_id in by_delivery
        and row.notified_at >= cutoff
        and row.task_id is not None  # an invitation's email is no task's update
    ]
    loaders = context.loaders
    status = await asyncio.gather(
        *(
            loaders.comment_deliveries.load(row.comment_id)
            if row.comment_id is not None
            else loaders.task_deliveries.load(task_of(row))
            for row in found
        )
    )
    loaded = [
        (row, status_rows, tuple(by_delivery[row.id]))
        for row, status_rows in zip(found, status, strict=True)
    ]
    loaded.sort(key=lambda item: item[2][-1])
    return loaded
