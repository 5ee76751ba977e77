"""`deliveryUpdated(taskId, after)`: what the client missed since its cursor, read from
the database, then the live feed, with nothing lost and nothing twice.

The seam: the subscription joins the live feed first, at the feed's position `start`.
Every event the live feed hands it later lies past `start`; the replay reads exactly
the events up to `start` that the cursor had not seen. Live updates whose events the
cursor had all seen (it may come from a node further ahead) are skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from graphql import GraphQLError

from db import event_log
from live.context import shared_context
from live.feed import Overflow
from live.positions import InvalidCursor, Position, decode_cursor
from live.updates import LiveUpdate, SharedResults, load_updates
from resolvers.context import Context, Info, parse_id
from resolvers.errors import bad_input, not_found


def overflow() -> GraphQLError:
    return GraphQLError(
        "This subscription fell too far behind. Subscribe again with the last cursor.",
        extensions={"code": "SUBSCRIPTION_OVERFLOW"},
    )


async def delivery_updates(
    info: Info, task_id: str | None, after: str | None
) -> AsyncIterator[LiveUpdate]:
    info.context.require_viewer()
    wanted: uuid.UUID | None = None
    if task_id is not None:
        wanted = parse_id(task_id, "task")
        if await info.context.loaders.task.load(wanted) is None:
            raise not_found("task")
    since: Position | None = None
    if after is not None:
        try:
            since = decode_cursor(after)
        except InvalidCursor as error:
            raise bad_input(f"'after': {error}.", field="after") from None
    async with info.context.services.live.listen(info.context) as listener:
        if since is not None:
            for update in await replay(info.context, since, listener.start, wanted):
                yield update
        while True:
            try:
                updates = await listener.next_batch()
            except Overflow:
                raise overflow() from None
            for update in updates:
                if wanted is not None and update.task_id != wanted:
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
    context: Context, since: Position, start: Position, task_id: uuid.UUID | None
) -> list[LiveUpdate]:
    """Updates for the events up to `start` that `since` has not seen, oldest first."""
    account_id = context.require_viewer().account_id
    async with context.db.read() as conn:
        if since.high > await event_log.latest_event_id(conn):
            raise bad_input("'after' is ahead of every delivery event.", field="after")
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
