"""Deleting delivery data older than the longest history window, in bounded batches."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from db.engine import Database
from db.tables import notifications, provider_reports


async def purge(db: Database, *, older_than: dt.datetime, batch_size: int = 1000) -> int:
    """Delete notifications created before `older_than` with everything that hangs off
    them (messages, deliveries, events, send jobs: ON DELETE CASCADE), one batch per
    transaction so no lock is held for long. Tasks and comments stay. Returns how many
    notifications were deleted."""
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
                await conn.execute(notifications.delete().where(notifications.c.id.in_(ids)))
            await conn.execute(
                provider_reports.delete().where(provider_reports.c.received_at < older_than)
            )
        deleted += len(ids)
        if len(ids) < batch_size:
            return deleted
