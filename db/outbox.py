"""The send queue: an outbox table, claimed under a lease.

A worker claims due jobs in one statement and holds them for `lease` seconds. The job
row is deleted (or rescheduled) in the same transaction that records the outcome, so a
worker that dies mid-send loses nothing: its lease runs out and another worker takes
the job again (at-least-once; the stable Message-ID makes a duplicate recognisable).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import send_jobs


@dataclass(frozen=True)
class ClaimedJob:
    job_id: int
    message_id: uuid.UUID


@dataclass(frozen=True)
class ClaimedEndpointJob:
    """A status-webhook endpoint's job: send its pending events, in order."""

    job_id: int
    endpoint_id: uuid.UUID


async def _claim(
    conn: AsyncConnection,
    target: sa.Column[Any],
    *,
    owner: str,
    now: dt.datetime,
    lease: dt.timedelta,
    limit: int,
) -> list[tuple[int, uuid.UUID]]:
    """Lease due jobs of one kind (a message's, or an endpoint's): (job id, target)."""
    due = (
        sa.select(send_jobs.c.id)
        .where(
            send_jobs.c.run_at <= now,
            sa.or_(send_jobs.c.lease_until.is_(None), send_jobs.c.lease_until < now),
            target.is_not(None),
        )
        .order_by(send_jobs.c.run_at, send_jobs.c.id)
        .limit(limit)
        # Renders on PostgreSQL only; SQLite has a single writer anyway.
        .with_for_update(skip_locked=True)
    )
    rows = (
        await conn.execute(
            send_jobs.update()
            .where(send_jobs.c.id.in_(due.scalar_subquery()))
            .values(lease_owner=owner, lease_until=now + lease)
            .returning(send_jobs.c.id, target)
        )
    ).all()
    return [(row[0], row[1]) for row in rows]


async def claim(
    conn: AsyncConnection,
    *,
    owner: str,
    now: dt.datetime,
    lease: dt.timedelta,
    limit: int,
) -> list[ClaimedJob]:
    claimed = await _claim(
        conn, send_jobs.c.message_id, owner=owner, now=now, lease=lease, limit=limit
    )
    return [ClaimedJob(job_id=job_id, message_id=target) for job_id, target in claimed]


async def claim_endpoint_jobs(
    conn: AsyncConnection,
    *,
    owner: str,
    now: dt.datetime,
    lease: dt.timedelta,
    limit: int,
) -> list[ClaimedEndpointJob]:
    claimed = await _claim(
        conn, send_jobs.c.webhook_endpoint_id, owner=owner, now=now, lease=lease, limit=limit
    )
    return [ClaimedEndpointJob(job_id=job_id, endpoint_id=target) for job_id, target in claimed]


async def finish(conn: AsyncConnection, job_id: int, owner: str) -> bool:
    """Delete a job this owner still holds. False when the lease was lost to another
    worker (it ran out mid-send): that worker now owns the job and finishes it."""
    result = await conn.execute(
        send_jobs.delete().where(send_jobs.c.id == job_id, send_jobs.c.lease_owner == owner)
    )
    return result.rowcount > 0


async def finish_many(conn: AsyncConnection, job_ids: Sequence[int], owner: str) -> set[int]:
    """`finish` for several jobs in one statement; returns the ids this owner still held."""
    if not job_ids:
        return set()
    result = await conn.execute(
        send_jobs.delete()
        .where(send_jobs.c.id.in_(job_ids), send_jobs.c.lease_owner == owner)
        .returning(send_jobs.c.id)
    )
    return {row.id for row in result.all()}


async def reschedule(conn: AsyncConnection, job_id: int, owner: str, run_at: dt.datetime) -> bool:
    """Release a job this owner holds until `run_at`; False when the lease was lost."""
    result = await conn.execute(
        send_jobs.update()
        .where(send_jobs.c.id == job_id, send_jobs.c.lease_owner == owner)
        .values(run_at=run_at, lease_owner=None, lease_until=None)
    )
    return result.rowcount > 0


async def release(conn: AsyncConnection, owner: str, job_ids: Sequence[int]) -> None:
    """Hand back jobs this worker holds but will not send (graceful shutdown)."""
    if job_ids:
        await conn.execute(
            send_jobs.update()
            .where(send_jobs.c.id.in_(job_ids), send_jobs.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )


async def enqueue(conn: AsyncConnection, message_id: uuid.UUID, now: dt.datetime) -> None:
    """Make sure the message has a job due now (a resend may find one still retrying).

    A job a worker holds keeps its lease: that worker re-checks the message's queued
    deliveries when it records its outcome, and keeps the job for what it did not send.
    """
    updated = await conn.execute(
        send_jobs.update().where(send_jobs.c.message_id == message_id).values(run_at=now)
    )
    if updated.rowcount == 0:
        await conn.execute(
            send_jobs.insert().values(message_id=message_id, run_at=now, created_at=now)
        )


async def next_run_at(conn: AsyncConnection) -> dt.datetime | None:
    """When the earliest job falls due, so an idle worker knows how long it may sleep."""
    earliest: dt.datetime | None = (
        await conn.execute(sa.select(sa.func.min(send_jobs.c.run_at)))
    ).scalar_one_or_none()
    return earliest
