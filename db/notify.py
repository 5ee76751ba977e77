"""Turning an event (task created, comment added) into a notification, its messages,
deliveries and send jobs: all inside the caller's transaction, so the comment and
everything it must send are stored together or not at all."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from common.domain import (
    Channel,
    DeliveryState,
    NotificationKind,
    PersonKind,
    Plan,
    TrackingConsent,
)
from common.events import DeliveryChanged
from db.tables import deliveries, delivery_events, messages, notifications, send_jobs


def may_track(account: Row[Any], addressees: Sequence[Row[Any]]) -> bool:
    """Whether an email to these people carries an open-tracking pixel: the plan tracks,
    the account has the pixel on, and every addressee may be tracked (one pixel serves
    a shared email, so one refusal takes it out for all)."""
    if not (Plan(account.plan).tracks_delivery and account.open_tracking):
        return False
    for person in addressees:
        consent = TrackingConsent(person.tracking_consent)
        if consent is TrackingConsent.DENIED:
            return False
        if account.require_tracking_consent and consent is not TrackingConsent.GRANTED:
            return False
    return True


def new_message_id(domain: str) -> str:
    return f"<{uuid.uuid4().hex}@{domain}>"


@dataclass(frozen=True)
class _Route:
    """One delivery to make: a recipient on a channel, at an address."""

    position: int
    person: Row[Any]
    channel: Channel
    address: str


def addresses_of(person: Row[Any], configured: frozenset[Channel]) -> dict[Channel, str]:
    """Where a person can be reached: each channel they have an address for, that the
    account can send on, and that they have not switched off. In-app notifications are
    for employees, who sign in."""
    disabled = set(person.disabled_channels or ())
    candidates: dict[Channel, str | None] = {
        Channel.EMAIL: person.email,
        Channel.TELEGRAM: person.telegram_chat_id,
        Channel.WHATSAPP: person.phone,
        Channel.SMS: person.phone,
        Channel.WEBHOOK: person.webhook_url,
        Channel.IN_APP: "in-app" if person.kind == PersonKind.EMPLOYEE.value else None,
    }
    return {
        channel: address
        for channel, address in candidates.items()
        if address and channel in configured and channel.value not in disabled
    }


async def enqueue_notification(
    conn: AsyncConnection,
    *,
    account: Row[Any],
    task_id: uuid.UUID | None,
    comment_id: uuid.UUID | None,
    kind: NotificationKind,
    recipients: Sequence[Row[Any]],
    configured: frozenset[Channel],
    message_id_domain: str,
    now: dt.datetime,
    message_text: str | None = None,
    invitation_id: uuid.UUID | None = None,
    pixel: bool = True,
) -> list[DeliveryChanged]:
    """One delivery per recipient and channel they can be reached on (`addresses_of`).

    Each delivery is its own message, except email with `show_all_recipients`: then
    the email deliveries share one message (one email, every addressee in To:, one
    pixel).
    """
    routes = [
        _Route(position, person, channel, address)
        for position, (person, channel, address) in enumerate(
            (person, channel, address)
            for person in recipients
            for channel, address in addresses_of(person, configured).items()
        )
    ]
    if not routes:
        return []
    notification_id = uuid.uuid4()
    await conn.execute(
        notifications.insert().values(
            id=notification_id,
            account_id=account.id,
            task_id=task_id,
            comment_id=comment_id,
            kind=kind.value,
            message_text=message_text,
            invitation_id=invitation_id,
            created_at=now,
        )
    )
    emails = [route for route in routes if route.channel is Channel.EMAIL]
    groups = (
        [emails, *([route] for route in routes if route.channel is not Channel.EMAIL)]
        if account.show_all_recipients and emails
        else [[route] for route in routes]
    )
    message_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    job_rows: list[dict[str, Any]] = []
    for group in groups:
        message_id = uuid.uuid4()
        channel = group[0].channel
        tracked = (
            pixel
            and channel is Channel.EMAIL
            and may_track(account, [route.person for route in group])
        )
        message_rows.append(
            {
                "id": message_id,
                "account_id": account.id,
                "notification_id": notification_id,
                "channel": channel.value,
                "header_message_id": new_message_id(message_id_domain),
                # Only email carries a pixel; messengers report reads themselves.
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
                "recipient_id": route.person.id,
                "position": route.position,
                "channel": route.channel.value,
                "address": route.address,
                "state": DeliveryState.QUEUED.value,
                "attempts": 0,
                "queued_at": now,
                "open_count": 0,
            }
            for route in group
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
