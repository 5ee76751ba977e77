"""The send queue as operators see it: how many jobs, and how late the oldest is."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import send_jobs


@dataclass(frozen=True)
class QueueStats:
    due: int
    leased: int
    scheduled: int
    oldest_due: dt.datetime | None


async def queue_stats(conn: AsyncConnection, now: dt.datetime) -> QueueStats:
    """`due`: waiting for a worker; `leased`: being sent; `scheduled`: a retry or a
    rate limit later. `oldest_due`: when the longest-waiting due job fell due."""
    free = sa.or_(send_jobs.c.lease_until.is_(None), send_jobs.c.lease_until < now)
    due = sa.and_(free, send_jobs.c.run_at <= now)
    row = (
        await conn.execute(
            sa.select(
                sa.func.count().filter(due).label("due"),
                sa.func.count().filter(sa.not_(free)).label("leased"),
                sa.func.count().filter(sa.and_(free, send_jobs.c.run_at > now)).label("scheduled"),
                sa.func.min(send_jobs.c.run_at).filter(due).label("oldest_due"),
            )
        )
    ).one()
    return QueueStats(
        due=int(row.due or 0),
        leased=int(row.leased or 0),
        scheduled=int(row.scheduled or 0),
        oldest_due=row.oldest_due,
    )
