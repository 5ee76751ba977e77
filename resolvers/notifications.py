"""The signed-in person's in-app notifications: the list, the unread count (also live),
and marking them all read. Each person sees only their own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from broadcast.facade import publish_changes
from common.cursors import InvalidCursor
from common.domain import Channel
from common.time import utcnow
from db import deliveries as db_deliveries
from db import notifications as db_notifications
from db.records import InAppNotificationRecord
from db.tasks import Page
from live.feed import Listener, Overflow
from resolvers.context import Info, parse_id
from resolvers.errors import bad_input, forbidden
from resolvers.queries import page_size


def _own(info: Info, person_id: str) -> uuid.UUID:
    viewer = info.context.require_viewer()
    if parse_id(person_id, "person") != viewer.person_id:
        raise forbidden("Only the signed-in person's own notifications can be read: use viewer.")
    return viewer.person_id


async def notifications(
    info: Info, person_id: str, first: int | None, after: str | None, unread_only: bool
) -> Page[InAppNotificationRecord]:
    own = _own(info, person_id)
    account_id = info.context.require_viewer().account_id
    try:
        async with info.context.db.read() as conn:
            return await db_notifications.page_notifications(
                conn,
                account_id,
                own,
                first=page_size(first),
                after=after,
                unread_only=unread_only,
            )
    except InvalidCursor as error:
        raise bad_input(f"'after': {error}.", field="after") from None


async def unread_count(info: Info, person_id: str) -> int:
    own = _own(info, person_id)
    async with info.context.db.read() as conn:
        return await db_notifications.unread_count(
            conn, info.context.require_viewer().account_id, own
        )


async def mark_all_read(info: Info) -> int:
    viewer = info.context.require_viewer()
    now = utcnow()
    async with info.context.db.write() as conn:
        moved = await db_notifications.mark_all_read(conn, viewer.account_id, viewer.person_id, now)
        await db_deliveries.add_event(conn, moved, "read", now)
        latest = (
            await db_deliveries.get_delivery(conn, viewer.account_id, moved[-1]) if moved else None
        )
    if latest is not None:
        # One message rings every subscriber of the account; they read what changed.
        await publish_changes(info.context.services.broadcast, [db_deliveries.change_of(latest)])
    return len(moved)


async def unread_counts(info: Info) -> AsyncIterator[int]:
    """The viewer's unread count now, then each time it changes. It rides the live feed
    (one reader of the event log per process, however many bells are open) and recounts
    only when one of the viewer's own in-app deliveries changed, not on every change in
    the account."""
    viewer = info.context.require_viewer()
    last: int | None = None
    # Joined before the first count: a change after it is never missed.
    async with info.context.services.live.listen(info.context) as listener:
        while True:
            async with info.context.db.read() as conn:
                count = await db_notifications.unread_count(
                    conn, viewer.account_id, viewer.person_id
                )
            if count != last:
                last = count
                yield count
            await _until_theirs_changes(listener, viewer.person_id)


async def _until_theirs_changes(listener: Listener, person_id: uuid.UUID) -> None:
    while True:
        try:
            batch = await listener.next_batch()
        except Overflow:
            return  # fell behind, so something may have changed: recount
        if any(
            update.delivery.recipient_id == person_id and update.delivery.channel == Channel.IN_APP
            for update in batch
        ):
            return
