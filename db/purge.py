"""Deleting delivery data older than the longest history window, in bounded batches."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from db import idempotency
from db.engine import Database
from db.tables import deliveries, delivery_events, notifications, provider_reports


async def purge(
    db: Database,
    *,
    older_than: dt.datetime,
    keys_used_before: dt.datetime | None = None,
    batch_size: int = 1000,
) -> int:
    """Delete notifications created before `older_than` with everything that hangs off
    them, one batch per transaction so no lock is held for long. Tasks and comments stay.
    Idempotency keys first used before `keys_used_before` go too (when it is given).
    Returns how many notifications were deleted."""
    if keys_used_before is not None:
        await _purge_keys(db, keys_used_before, batch_size)
    deleted = 0
    while True:
        async with db.write() as conn:
            ids = (
                (
                    await conn.execute(
                        sa.select(notifications.c.id)
                        .where(notifications.c.created_at < older_than)
                        .limit(batch_size)
                    )
                )
                .scalars()
                .all()
            )
            if ids:
                await _delete_notifications(conn, ids)
            await conn.execute(
                provider_reports.delete().where(provider_reports.c.received_at < older_than)
            )
        deleted += len(ids)
        if len(ids) < batch_size:
            return deleted


async def _delete_notifications(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> None:
    theirs = sa.select(deliveries.c.id).where(deliveries.c.notification_id.in_(ids))
    # Events have no foreign key to cascade along (ADR 0014), so they are deleted here.
    # The deliveries are locked first, in id order as the pixel's batches lock them: a
    # writer that holds one commits its event before the DELETE below looks, or waits and
    # then finds the delivery gone. (SQLite writes one transaction at a time anyway.)
    await conn.execute(theirs.order_by(deliveries.c.id).with_for_update())
    await conn.execute(delivery_events.delete().where(delivery_events.c.delivery_id.in_(theirs)))
    # Messages, deliveries and send jobs go by ON DELETE CASCADE.
    await conn.execute(notifications.delete().where(notifications.c.id.in_(ids)))


async def _purge_keys(db: Database, used_before: dt.datetime, batch_size: int) -> None:
    while True:
        async with db.write() as conn:
            gone = await idempotency.delete_expired(conn, used_before=used_before, limit=batch_size)
        if gone < batch_size:
            return
