"""Storing a notification: its messages, deliveries and send jobs, all inside the
caller's transaction, so the comment and everything it must send are stored together
or not at all. Who gets what is decided before (domain/notifications.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from common.domain import Channel, DeliveryState, NotificationKind
from common.events import DeliveryChanged
from db.tables import deliveries, delivery_events, messages, notifications, send_jobs


@dataclass(frozen=True)
class NewDelivery:
    position: int
    recipient_id: uuid.UUID
    channel: Channel
    address: str


@dataclass(frozen=True)
class NewMessage:
    channel: Channel
    header_message_id: str
    pixel_id: str | None
    deliveries: Sequence[NewDelivery]


async def store_notification(
    conn: AsyncConnection,
    *,
    account_id: uuid.UUID,
    task_id: uuid.UUID | None,
    comment_id: uuid.UUID | None,
    kind: NotificationKind,
    new_messages: Sequence[NewMessage],
    now: dt.datetime,
    message_text: str | None = None,
    invitation_id: uuid.UUID | None = None,
) -> list[DeliveryChanged]:
    """The notification, each message with its deliveries (QUEUED) and a send job."""
    if not new_messages:
        return []
    notification_id = uuid.uuid4()
    await conn.execute(
        notifications.insert().values(
            id=notification_id,
            account_id=account_id,
            task_id=task_id,
            comment_id=comment_id,
            kind=kind.value,
            message_text=message_text,
            invitation_id=invitation_id,
            created_at=now,
        )
    )
    message_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    job_rows: list[dict[str, Any]] = []
    for message in new_messages:
        message_id = uuid.uuid4()
        message_rows.append(
            {
                "id": message_id,
                "account_id": account_id,
                "notification_id": notification_id,
                "channel": message.channel.value,
                "header_message_id": message.header_message_id,
                "pixel_id": message.pixel_id,
                "created_at": now,
            }
        )
        job_rows.append({"message_id": message_id, "run_at": now, "created_at": now})
        delivery_rows.extend(
            {
                "id": uuid.uuid4(),
                "account_id": account_id,
                "notification_id": notification_id,
                "message_id": message_id,
                "recipient_id": delivery.recipient_id,
                "position": delivery.position,
                "channel": delivery.channel.value,
                "address": delivery.address,
                "state": DeliveryState.QUEUED.value,
                "attempts": 0,
                "queued_at": now,
                "open_count": 0,
            }
            for delivery in message.deliveries
        )
    await conn.execute(messages.insert(), message_rows)
    await conn.execute(deliveries.insert(), delivery_rows)
    await conn.execute(
        delivery_events.insert(),
        [
            {"delivery_id": row["id"], "type": "queued", "at": now, "detail": None}
            for row in delivery_rows
        ],
    )
    await conn.execute(send_jobs.insert(), job_rows)
    return [
        DeliveryChanged(
            account_id=account_id,
            delivery_id=row["id"],
            task_id=task_id,
            comment_id=comment_id,
        )
        for row in delivery_rows
    ]
