"""A person's in-app notifications: their IN_APP deliveries, newest first, with what
each is about."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from common.cursors import decode_cursor
from common.domain import Channel, DeliveryState, predecessors
from db.records import InAppNotificationRecord
from db.tables import comments, deliveries, notifications, tasks
from db.tasks import Page

IN_APP = Channel.IN_APP.value
# Unread: not READ yet, and may still become so (the state machine's, common/domain.py).
_UNREAD_STATES = sorted(state.value for state in predecessors(DeliveryState.READ))


def _theirs(account_id: uuid.UUID, person_id: uuid.UUID) -> sa.ColumnElement[bool]:
    return sa.and_(
        deliveries.c.account_id == account_id,
        deliveries.c.recipient_id == person_id,
        deliveries.c.channel == IN_APP,
    )


def _unread() -> sa.ColumnElement[bool]:
    return deliveries.c.state.in_(_UNREAD_STATES)


async def page_notifications(
    conn: AsyncConnection,
    account_id: uuid.UUID,
    person_id: uuid.UUID,
    *,
    first: int,
    after: str | None,
    unread_only: bool,
) -> Page[InAppNotificationRecord]:
    """The person's in-app notifications, newest first, paged by `(created_at, id)`
    cursors."""
    created_at = notifications.c.created_at.label("created_at")
    query = (
        sa.select(
            deliveries.c.id,
            deliveries.c.state,
            deliveries.c.read_at,
            created_at,
            notifications.c.kind,
            notifications.c.message_text,
            tasks.c.id.label("task_id"),
            tasks.c.title.label("task_title"),
            comments.c.id.label("comment_id"),
            comments.c.body.label("comment_body"),
        )
        .select_from(
            deliveries.join(notifications, notifications.c.id == deliveries.c.notification_id)
            .join(tasks, tasks.c.id == notifications.c.task_id)
            .outerjoin(comments, comments.c.id == notifications.c.comment_id)
        )
        .where(_theirs(account_id, person_id))
    )
    if unread_only:
        query = query.where(_unread())
    if after is not None:
        at, row_id = decode_cursor(after)
        query = query.where(sa.tuple_(notifications.c.created_at, deliveries.c.id) < (at, row_id))
    ordered = query.order_by(notifications.c.created_at.desc(), deliveries.c.id.desc())
    rows = InAppNotificationRecord.of_all((await conn.execute(ordered.limit(first + 1))).all())
    return Page(rows=rows[:first], has_next=len(rows) > first)


async def unread_count(conn: AsyncConnection, account_id: uuid.UUID, person_id: uuid.UUID) -> int:
    query = sa.select(sa.func.count()).where(_theirs(account_id, person_id), _unread())
    return int((await conn.execute(query)).scalar_one())


async def mark_all_read(
    conn: AsyncConnection, account_id: uuid.UUID, person_id: uuid.UUID, now: dt.datetime
) -> list[uuid.UUID]:
    """Mark every unread in-app notification of the person READ; the ids that moved."""
    moved = (
        await conn.execute(
            deliveries.update()
            .where(_theirs(account_id, person_id), _unread())
            .values(
                state="READ",
                read_at=now,
                sent_at=sa.func.coalesce(deliveries.c.sent_at, now),
                held_until=None,
            )
            .returning(deliveries.c.id)
        )
    ).scalars()
    return list(moved)


def text_of(row: InAppNotificationRecord) -> str:
    """What the notification says: a scenario's text, the comment, or the new task."""
    if row.message_text:
        return str(row.message_text)
    if row.comment_body is not None:
        return str(row.comment_body)
    return f"New task: {row.task_title}"
