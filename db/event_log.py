"""delivery_events read as a log, in id order: what the live feed and resumed
subscriptions read. Every state change of a delivery writes an event row, so the rows
after a position name every delivery that changed since."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from db.records import AccountLoggedEvent, DeliveryRow, LoggedEvent
from db.tables import deliveries, delivery_events, notifications


async def latest_event_id(conn: AsyncConnection) -> int:
    """The highest event id committed so far (0 for none)."""
    value = (await conn.execute(sa.select(sa.func.max(delivery_events.c.id)))).scalar_one()
    return int(value or 0)


async def events_after(
    conn: AsyncConnection, after: int, also: Collection[int], limit: int
) -> list[AccountLoggedEvent]:
    """Committed events with an id above `after` or in `also`, of every account, oldest
    first: (id, delivery_id, account_id)."""
    newer = delivery_events.c.id > after
    wanted = sa.or_(newer, delivery_events.c.id.in_(sorted(also))) if also else newer
    rows = await conn.execute(
        sa.select(delivery_events.c.id, delivery_events.c.delivery_id, deliveries.c.account_id)
        .join(deliveries, deliveries.c.id == delivery_events.c.delivery_id)
        .where(wanted)
        .order_by(delivery_events.c.id)
        .limit(limit)
    )
    return cast(list[AccountLoggedEvent], list(rows.all()))


async def account_events_between(
    conn: AsyncConnection,
    account_id: uuid.UUID,
    task_id: uuid.UUID | None,
    *,
    after: int,
    upto: int,
    also: Collection[int],
    excluded: Collection[int],
) -> list[LoggedEvent]:
    """One account's events (of one task, if given) with an id in (after, upto] or in
    `also` (and at most `upto`), leaving out `excluded`: (id, delivery_id), oldest first."""
    in_range = sa.and_(delivery_events.c.id > after, delivery_events.c.id <= upto)
    extra = sa.and_(delivery_events.c.id.in_(sorted(also)), delivery_events.c.id <= upto)
    query = (
        sa.select(delivery_events.c.id, delivery_events.c.delivery_id)
        .join(deliveries, deliveries.c.id == delivery_events.c.delivery_id)
        .where(deliveries.c.account_id == account_id, sa.or_(in_range, extra) if also else in_range)
        .order_by(delivery_events.c.id)
    )
    if excluded:
        query = query.where(delivery_events.c.id.not_in(sorted(excluded)))
    if task_id is not None:
        query = query.join(notifications, notifications.c.id == deliveries.c.notification_id).where(
            notifications.c.task_id == task_id
        )
    return cast(list[LoggedEvent], list((await conn.execute(query)).all()))


async def deliveries_by_ids(
    conn: AsyncConnection, account_id: uuid.UUID, delivery_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, DeliveryRow]:
    """Deliveries of one account with the task and comment they are about."""
    if not delivery_ids:
        return {}
    rows = await conn.execute(
        sa.select(
            deliveries,
            notifications.c.task_id,
            notifications.c.comment_id,
            notifications.c.created_at.label("notified_at"),
        )
        .join(notifications, notifications.c.id == deliveries.c.notification_id)
        .where(deliveries.c.id.in_(delivery_ids), deliveries.c.account_id == account_id)
    )
    return {row.id: row for row in rows.all()}
