"""Provider reports: each (channel, provider id, status) is applied once, and what a
"delivered" or "read" report writes on its delivery."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from common.domain import DeliveryState
from db.deliveries import transition
from db.tables import deliveries, provider_reports


async def record_once(
    conn: AsyncConnection,
    *,
    channel: str,
    provider_message_id: str,
    status: str,
    received_at: dt.datetime,
) -> bool:
    """Remember the report; False when it was seen before (a replay or a retry)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    result = await conn.execute(
        insert(provider_reports)
        .values(
            channel=channel,
            provider_message_id=provider_message_id,
            status=status,
            received_at=received_at,
        )
        .on_conflict_do_nothing()
    )
    return result.rowcount > 0


async def note_delivered(conn: AsyncConnection, delivery_id: uuid.UUID, at: dt.datetime) -> None:
    """The provider says the message reached the device: the first such time is kept."""
    await conn.execute(
        deliveries.update()
        .where(deliveries.c.id == delivery_id, deliveries.c.delivered_at.is_(None))
        .values(delivered_at=at)
    )


async def mark_read(conn: AsyncConnection, delivery_id: uuid.UUID, at: dt.datetime) -> None:
    """READ at `at`; a read report that overtook the "sent" one also dates the send."""
    await transition(
        conn,
        [delivery_id],
        DeliveryState.READ,
        {
            "read_at": at,
            "sent_at": sa.func.coalesce(
                deliveries.c.sent_at, sa.literal(at, deliveries.c.sent_at.type)
            ),
        },
    )
