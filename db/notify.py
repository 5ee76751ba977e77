"""Turning an event (task created, comment added) into a notification, its messages,
deliveries and send jobs: all inside the caller's transaction, so the comment and
everything it must send are stored together or not at all."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from common.domain import Channel, DeliveryState, NotificationKind, Plan
from common.events import DeliveryChanged
from db.tables import deliveries, delivery_events, messages, notifications, send_jobs


def may_track(account: Row[Any]) -> bool:
    """Whether new email for this account carries an open-tracking pixel."""
    return Plan(account.plan).tracks_delivery and bool(account.open_tracking)


def new_message_id(domain: str) -> str:
    return f"<{uuid.uuid4().hex}@{domain}>"


async def enqueue_notification(
    conn: AsyncConnection,
    *,
    account: Row[Any],
    task_id: uuid.UUID,
    comment_id: uuid.UUID | None,
    kind: NotificationKind,
    recipients: Sequence[Row[Any]],
    message_id_domain: str,
    now: dt.datetime,
) -> list[DeliveryChanged]:
    """One delivery per recipient and channel they have an address for (email for now).

    With `show_all_recipients` the email deliveries share one message (one email, every
    addressee in To:, one pixel); otherwise each delivery is its own message.
    """
    email_recipients = [person for person in recipients if person.email]
    if not email_recipients:
        return []
    notification_id = uuid.uuid4()
    await conn.execute(
        notifications.insert().values(
            id=notification_id,
            account_id=account.id,
            task_id=task_id,
            comment_id=comment_id,
            kind=kind.value,
            created_at=now,
        )
    )
    numbered = list(enumerate(email_recipients))
    groups = [numbered] if account.show_all_recipients else [[pair] for pair in numbered]
    tracked = may_track(account)
    message_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    job_rows: list[dict[str, Any]] = []
    for group in groups:
        message_id = uuid.uuid4()
        message_rows.append(
            {
                "id": message_id,
                "account_id": account.id,
                "notification_id": notification_id,
                "channel": Channel.EMAIL.value,
                "header_message_id": new_message_id(message_id_domain),
                "pixel_id": secrets.token_hex(16) if tracked else None,
                "created_at": now,
            }
        )
        job_rows.append({"message_id": message_id, "run_at": now, "created_at": now})
        delivery_rows.extend(
            {
                "id": uuid.uuid4(),
                "account_id": account.id,
                "notification_id": notification_id,
                "message_id": message_id,
                "recipient_id": person.id,
                "position": position,
                "channel": Channel.EMAIL.value,
                "address": person.email,
                "state": DeliveryState.QUEUED.value,
                "attempts": 0,
                "queued_at": now,
                "open_count": 0,
            }
            for position, person in group
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
            account_id=account.id,
            delivery_id=row["id"],
            task_id=task_id,
            comment_id=comment_id,
        )
        for row in delivery_rows
    ]
