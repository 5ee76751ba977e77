"""A subscription's updates after its cursor: what it missed, read from the delivery
event log, then the live feed, with nothing lost and nothing twice.

The seam: the subscription joins the live feed first, at the feed's position `start`.
Every event the live feed hands it later lies past `start`; the replay reads exactly
the events up to `start` that the cursor had not seen. Live updates whose events the
cursor had all seen (it may come from a node further ahead) are skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator

from db import event_log
from live.context import LiveContext, shared_context
from live.feed import Listener
from live.positions import Position
from live.updates import LiveUpdate, SharedResults, load_updates


class CursorAhead(Exception):
    """The cursor names events past every one in the log: not made by this log."""


async def updates_after(
    listener: Listener, since: Position | None, task_id: uuid.UUID | None
) -> AsyncGenerator[LiveUpdate, None]:
    """The listener's updates (of `task_id`'s deliveries, or all), starting with what
    `since` has not seen; every update when there is no cursor. Raises the listener's
    `Overflow` when the subscriber falls too far behind."""
    if since is not None:
        for update in await replay(listener.context, since, listener.start, task_id):
            yield update
    while True:
        for update in await listener.next_batch():
            if task_id is not None and update.task_id != task_id:
                continue
            if since is not None:
                if all(since.covers(event_id) for event_id in update.event_ids):
                    continue  # seen before the client reconnected
                if not update.position.includes(since):
                    yield update.at(update.position.union(since))
                    continue
                since = None  # the feed has caught up with the cursor
            yield update


async def replay(
    context: LiveContext, since: Position, start: Position, task_id: uuid.UUID | None
) -> list[LiveUpdate]:
    """Updates for the events up to `start` that `since` has not seen, oldest first."""
    account_id = context.require_viewer().account_id
    async with context.db.read() as conn:
        if since.high > await event_log.latest_event_id(conn):
            raise CursorAhead
        events = await event_log.account_events_between(
            conn,
            account_id,
            task_id,
            after=since.high,
            upto=start.high,
            also=since.gaps,
            excluded=start.gaps,
        )
    shared = shared_context(context)
    loaded = await load_updates(shared, [(row.id, row.delivery_id) for row in events])
    updates = []
    for delivery, status_rows, event_ids in loaded:
        latest = event_ids[-1]
        seen = Position(latest, frozenset(gap for gap in start.gaps if gap < latest))
        updates.append(
            LiveUpdate(delivery, status_rows, event_ids, seen.union(since), SharedResults(shared))
        )
    return updates
