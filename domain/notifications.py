"""Turning an event (task created, comment added) into a notification: the rules of
domain/recipients.py decide who gets which message, db/notify.py stores it."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from common.domain import Channel, NotificationKind
from common.events import DeliveryChanged
from db.notify import NewDelivery, NewMessage, store_notification
from domain.recipients import Addressee, TrackingAccount, new_message_id, plan_messages


class NotifiedAccount(TrackingAccount, Protocol):
    @property
    def id(self) -> uuid.UUID: ...


async def enqueue_notification(
    conn: AsyncConnection,
    *,
    account: NotifiedAccount,
    task_id: uuid.UUID | None,
    comment_id: uuid.UUID | None,
    kind: NotificationKind,
    recipients: Sequence[Addressee],
    configured: frozenset[Channel],
    message_id_domain: str,
    now: dt.datetime,
    message_text: str | None = None,
    invitation_id: uuid.UUID | None = None,
    pixel: bool = True,
) -> list[DeliveryChanged]:
    """Queue the messages `plan_messages` makes for these recipients, in the caller's
    transaction; what changed, for the live feed."""
    planned = plan_messages(account, recipients, configured)
    return await store_notification(
        conn,
        account_id=account.id,
        task_id=task_id,
        comment_id=comment_id,
        kind=kind,
        new_messages=[
            NewMessage(
                channel=message.channel,
                header_message_id=new_message_id(message_id_domain),
                pixel_id=message.pixel_id if pixel else None,
                deliveries=[
                    NewDelivery(route.position, route.person.id, route.channel, route.address)
                    for route in message.routes
                ],
            )
            for message in planned
        ],
        now=now,
        message_text=message_text,
        invitation_id=invitation_id,
    )
