"""Deliveries: reading them with their task and comment, and moving their state.

Every state change is one conditional UPDATE (`… WHERE state IN (allowed predecessors)`),
so concurrent or late reports can never move a state backwards; the event row is
written either way, so the history keeps what arrived.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from common.domain import Channel, DeliveryState, NotificationKind, predecessors
from common.events import DeliveryChanged
from db.records import (
    DeliveryEventRecord,
    DeliveryRow,
    MessageRecord,
    NotificationRecord,
    StatusCount,
    TaskDeliveryRow,
)
from db.tables import comments, deliveries, delivery_events, messages, notifications

T = TypeVar("T")

# A delivery with the task and comment its notification is about.
_WITH_TARGET = sa.select(
    deliveries,
    notifications.c.task_id,
    notifications.c.comment_id,
    notifications.c.created_at.label("notified_at"),
).join(notifications, notifications.c.id == deliveries.c.notification_id)

_ORDER = (deliveries.c.notification_id, deliveries.c.position)


def _grouped(rows: Iterable[T], key: str) -> dict[uuid.UUID, list[T]]:
    """The rows by the value of their column `key`, in the order given."""
    grouped: dict[uuid.UUID, list[T]] = defaultdict(list)
    for row in rows:
        grouped[getattr(row, key)].append(row)
    return grouped


def change_of(row: DeliveryRow) -> DeliveryChanged:
    return DeliveryChanged(
        account_id=row.account_id,
        delivery_id=row.id,
        task_id=row.task_id,
        comment_id=row.comment_id,
    )


async def get_delivery(
    conn: AsyncConnection, account_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryRow | None:
    return (
        await conn.execute(
            _WITH_TARGET.where(
                deliveries.c.id == delivery_id, deliveries.c.account_id == account_id
            )
        )
    ).first()


async def deliveries_by_comment(
    conn: AsyncConnection, comment_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[DeliveryRow]]:
    rows = (
        await conn.execute(
            _WITH_TARGET.where(notifications.c.comment_id.in_(comment_ids)).order_by(*_ORDER)
        )
    ).all()
    return _grouped(rows, "comment_id")


async def deliveries_by_task(
    conn: AsyncConnection, task_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[DeliveryRow]]:
    """The deliveries of each task's own notification (its creation), not its comments'."""
    rows = (
        await conn.execute(
            _WITH_TARGET.where(
                notifications.c.task_id.in_(task_ids),
                notifications.c.kind == NotificationKind.TASK_CREATED.value,
            ).order_by(*_ORDER)
        )
    ).all()
    return _grouped(rows, "task_id")


async def deliveries_of_tasks(
    conn: AsyncConnection, task_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[TaskDeliveryRow]]:
    """Every delivery of each task: its own notification's and its comments', each with
    its task and comment and whether that comment is a system one (`is_system`, null for
    the task's own)."""
    rows = (
        await conn.execute(
            _WITH_TARGET.add_columns(comments.c.is_system)
            .outerjoin(comments, comments.c.id == notifications.c.comment_id)
            .where(notifications.c.task_id.in_(task_ids))
            .order_by(notifications.c.created_at, *_ORDER)
        )
    ).all()
    return _grouped(rows, "task_id")


async def status_counts_by_task(
    conn: AsyncConnection, task_ids: Sequence[uuid.UUID], *, since: dt.datetime
) -> dict[uuid.UUID, list[StatusCount]]:
    """How many of each task's deliveries (as `deliveries_of_tasks` finds them) are in
    each state, of notifications from `since` on: rows of (task_id, is_system, state,
    deliveries, held, held_until), where `held` counts those the rate limit holds back
    and `held_until` is the earliest time it holds one to (meaningful for QUEUED only)."""
    query = (
        sa.select(
            notifications.c.task_id,
            comments.c.is_system,
            deliveries.c.state,
            sa.func.count().label("deliveries"),
            sa.func.count(deliveries.c.held_until).label("held"),
            sa.func.min(deliveries.c.held_until).label("held_until"),
        )
        .select_from(deliveries)
        .join(notifications, notifications.c.id == deliveries.c.notification_id)
        .outerjoin(comments, comments.c.id == notifications.c.comment_id)
        .where(notifications.c.task_id.in_(task_ids), notifications.c.created_at >= since)
        .group_by(notifications.c.task_id, comments.c.is_system, deliveries.c.state)
    )
    return _grouped(StatusCount.of_all((await conn.execute(query)).all()), "task_id")


async def events_by_delivery(
    conn: AsyncConnection, delivery_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[DeliveryEventRecord]]:
    rows = (
        await conn.execute(
            delivery_events.select()
            .where(delivery_events.c.delivery_id.in_(delivery_ids))
            .order_by(delivery_events.c.id)
        )
    ).all()
    return _grouped(DeliveryEventRecord.of_all(rows), "delivery_id")


async def add_event(
    conn: AsyncConnection,
    delivery_ids: Sequence[uuid.UUID],
    event_type: str,
    at: dt.datetime,
    detail: str | None = None,
) -> None:
    if delivery_ids:
        await conn.execute(
            delivery_events.insert(),
            [
                {"delivery_id": delivery_id, "type": event_type, "at": at, "detail": detail}
                for delivery_id in delivery_ids
            ],
        )


@dataclass(frozen=True)
class NewEvent:
    delivery_id: uuid.UUID
    type: str
    at: dt.datetime
    detail: str | None = None


async def add_events(conn: AsyncConnection, events: Sequence[NewEvent]) -> None:
    """Write events of any types in one statement, in the order given."""
    if events:
        await conn.execute(
            delivery_events.insert(),
            [
                {"delivery_id": e.delivery_id, "type": e.type, "at": e.at, "detail": e.detail}
                for e in events
            ],
        )


async def transition(
    conn: AsyncConnection,
    delivery_ids: Sequence[uuid.UUID],
    new_state: DeliveryState,
    values: dict[str, Any],
) -> list[uuid.UUID]:
    """Move the deliveries that may enter `new_state`; returns the ids that moved. A
    state change ends any hold of the rate limit."""
    if not delivery_ids:
        return []
    result = await conn.execute(
        deliveries.update()
        .where(
            deliveries.c.id.in_(delivery_ids),
            deliveries.c.state.in_([state.value for state in predecessors(new_state)]),
        )
        .values(state=new_state.value, held_until=None, **values)
        .returning(deliveries.c.id)
    )
    return [row.id for row in result.all()]


async def hold(
    conn: AsyncConnection, delivery_ids: Sequence[uuid.UUID], until: dt.datetime
) -> None:
    """The rate limit holds these deliveries back until then (those still queued)."""
    await conn.execute(
        deliveries.update()
        .where(
            deliveries.c.id.in_(delivery_ids),
            deliveries.c.state == DeliveryState.QUEUED.value,
        )
        .values(held_until=until)
    )


@dataclass(frozen=True)
class SendBatch:
    """What a worker needs to send one message: the message, and its deliveries."""

    message: MessageRecord
    notification: NotificationRecord
    all_deliveries: Sequence[DeliveryRow]

    @property
    def pending(self) -> list[DeliveryRow]:
        return [row for row in self.all_deliveries if row.state == DeliveryState.QUEUED.value]


async def load_send_batch(conn: AsyncConnection, message_id: uuid.UUID) -> SendBatch | None:
    return (await load_send_batches(conn, [message_id])).get(message_id)


async def load_send_batches(
    conn: AsyncConnection, message_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, SendBatch]:
    """The batch of each message that still exists, in three queries whatever the count."""
    if not message_ids:
        return {}
    found = MessageRecord.of_all(
        (await conn.execute(messages.select().where(messages.c.id.in_(message_ids)))).all()
    )
    if not found:
        return {}
    notification_rows = {
        row.id: NotificationRecord.of(row)
        for row in (
            await conn.execute(
                notifications.select().where(
                    notifications.c.id.in_({message.notification_id for message in found})
                )
            )
        ).all()
    }
    rows = await conn.execute(
        _WITH_TARGET.where(deliveries.c.message_id.in_([message.id for message in found])).order_by(
            *_ORDER
        )
    )
    grouped: dict[uuid.UUID, list[DeliveryRow]] = defaultdict(list)
    for row in rows:
        grouped[row.message_id].append(row)
    return {
        message.id: SendBatch(
            message=message,
            notification=notification_rows[message.notification_id],
            all_deliveries=grouped[message.id],
        )
        for message in found
    }


async def count_queued(conn: AsyncConnection, message_id: uuid.UUID) -> int:
    return int(
        (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(deliveries)
                .where(
                    deliveries.c.message_id == message_id,
                    deliveries.c.state == DeliveryState.QUEUED.value,
                )
            )
        ).scalar_one()
    )


async def queued_counts(
    conn: AsyncConnection, message_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """How many deliveries of each message are still QUEUED (0 for the others)."""
    counts = dict.fromkeys(message_ids, 0)
    if message_ids:
        rows = await conn.execute(
            sa.select(deliveries.c.message_id, sa.func.count())
            .where(
                deliveries.c.message_id.in_(message_ids),
                deliveries.c.state == DeliveryState.QUEUED.value,
            )
            .group_by(deliveries.c.message_id)
        )
        counts.update((message_id, int(n)) for message_id, n in rows)
    return counts


async def recent_sends(
    conn: AsyncConnection,
    account_id: uuid.UUID,
    channel: Channel,
    addresses: Sequence[str],
    *,
    since: dt.datetime,
    limit: int,
) -> dict[str, list[dt.datetime]]:
    """The send times (oldest first) of each address after `since`, at most `limit` of
    the most recent per address: enough to tell whether a rate limit is reached."""
    if not addresses:
        return {}
    rows = (
        await conn.execute(
            sa.select(deliveries.c.address, deliveries.c.sent_at)
            .where(
                deliveries.c.account_id == account_id,
                deliveries.c.channel == channel.value,
                deliveries.c.address.in_(set(addresses)),
                deliveries.c.sent_at > since,
            )
            .order_by(deliveries.c.address, deliveries.c.sent_at)
        )
    ).all()
    grouped: dict[str, list[dt.datetime]] = defaultdict(list)
    for row in rows:
        grouped[row.address].append(row.sent_at)
    return {address: times[-limit:] if limit else times for address, times in grouped.items()}


async def message_deliveries(conn: AsyncConnection, message_id: uuid.UUID) -> list[DeliveryRow]:
    rows = await conn.execute(
        _WITH_TARGET.where(deliveries.c.message_id == message_id).order_by(*_ORDER)
    )
    return list(rows.all())


async def delivery_by_provider_id(
    conn: AsyncConnection, channel: Channel, provider_message_id: str
) -> DeliveryRow | None:
    return (
        await conn.execute(
            _WITH_TARGET.where(
                deliveries.c.channel == channel.value,
                deliveries.c.provider_message_id == provider_message_id,
            )
        )
    ).first()


async def count_attempts(
    conn: AsyncConnection, delivery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Count one more attempt on each delivery still queued (it is no longer held back);
    returns the new counts."""
    if not delivery_ids:
        return {}
    result = await conn.execute(
        deliveries.update()
        .where(
            deliveries.c.id.in_(delivery_ids),
            deliveries.c.state == DeliveryState.QUEUED.value,
        )
        .values(attempts=deliveries.c.attempts + 1, held_until=None)
        .returning(deliveries.c.id, deliveries.c.attempts)
    )
    return {row.id: row.attempts for row in result.all()}
