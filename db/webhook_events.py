"""Status-webhook events: the pending ones of an endpoint, their attempts, replays, and
finishing an endpoint's job without losing an event written meanwhile.

Events are written by a trigger on deliveries (migration 0009), never here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from db.records import WebhookAttemptRecord, WebhookEventRecord
from db.tables import (
    deliveries,
    notifications,
    send_jobs,
    webhook_attempts,
    webhook_events,
)

PENDING = "PENDING"
DELIVERED = "DELIVERED"
FAILED = "FAILED"

# An event with the delivery's fixed facts (null once the delivery is purged).
_WITH_DELIVERY = (
    sa.select(
        webhook_events,
        deliveries.c.recipient_id,
        deliveries.c.channel,
        deliveries.c.address,
        notifications.c.task_id,
        notifications.c.comment_id,
    )
    .select_from(webhook_events)
    .outerjoin(deliveries, deliveries.c.id == webhook_events.c.delivery_id)
    .outerjoin(notifications, notifications.c.id == deliveries.c.notification_id)
)


async def pending_events(
    conn: AsyncConnection, endpoint_id: uuid.UUID, limit: int
) -> list[WebhookEventRecord]:
    """The endpoint's pending events, oldest first."""
    rows = await conn.execute(
        _WITH_DELIVERY.where(
            webhook_events.c.endpoint_id == endpoint_id, webhook_events.c.status == PENDING
        )
        .order_by(webhook_events.c.id)
        .limit(limit)
    )
    return WebhookEventRecord.of_all(rows.all())


@dataclass(frozen=True)
class AttemptResult:
    event_id: int
    at: dt.datetime
    status_code: int | None
    latency_ms: float
    response: str | None
    error: str | None
    succeeded: bool
    # The event is finished: DELIVERED or FAILED (retries ran out); None: still PENDING.
    outcome: str | None


async def record_attempts(
    conn: AsyncConnection, endpoint_id: uuid.UUID, results: Sequence[AttemptResult]
) -> None:
    """Each attempt in the log, and each event's count and outcome."""
    if not results:
        return
    await conn.execute(
        webhook_attempts.insert(),
        [
            {
                "endpoint_id": endpoint_id,
                "event_id": r.event_id,
                "at": r.at,
                "status_code": r.status_code,
                "latency_ms": r.latency_ms,
                "response": r.response,
                "error": r.error,
                "succeeded": r.succeeded,
            }
            for r in results
        ],
    )
    for outcome in (DELIVERED, FAILED, None):
        ids = [r.event_id for r in results if r.outcome == outcome]
        if not ids:
            continue
        values: dict[str, Any] = {"attempts": webhook_events.c.attempts + 1}
        if outcome is not None:
            values.update(status=outcome, finished_at=max(r.at for r in results))
        await conn.execute(
            webhook_events.update()
            .where(webhook_events.c.id.in_(ids), webhook_events.c.status == PENDING)
            .values(**values)
        )


async def release_job(
    conn: AsyncConnection,
    job_id: int,
    owner: str,
    endpoint_id: uuid.UUID,
    run_at: dt.datetime | None,
) -> bool:
    """End this owner's run of an endpoint's job: kept until `run_at` while events are
    pending, deleted otherwise (and always when `run_at` is None: the endpoint is
    disabled or gone). False when the lease was lost.

    The row is updated before the pending events are looked at: a transaction whose
    trigger is adding an event holds the row, so this waits for it and then sees the
    event (READ COMMITTED reads afresh per statement) instead of deleting the job under it.
    """
    held = await conn.execute(
        send_jobs.update()
        .where(send_jobs.c.id == job_id, send_jobs.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None, run_at=run_at or send_jobs.c.run_at)
    )
    if held.rowcount == 0:
        return False
    if run_at is not None:
        pending = (
            await conn.execute(
                sa.select(webhook_events.c.id)
                .where(
                    webhook_events.c.endpoint_id == endpoint_id,
                    webhook_events.c.status == PENDING,
                )
                .limit(1)
            )
        ).first()
        if pending is not None:
            return True
    await conn.execute(send_jobs.delete().where(send_jobs.c.id == job_id))
    return True


async def attempts_page(
    conn: AsyncConnection,
    endpoint_id: uuid.UUID,
    *,
    before: int | None,
    limit: int,
    failed_only: bool,
) -> list[WebhookAttemptRecord]:
    """An endpoint's attempts, newest first, with the event each tried."""
    query = (
        sa.select(webhook_attempts, webhook_events.c.type, webhook_events.c.delivery_id)
        .join(webhook_events, webhook_events.c.id == webhook_attempts.c.event_id)
        .where(webhook_attempts.c.endpoint_id == endpoint_id)
        .order_by(webhook_attempts.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(webhook_attempts.c.id < before)
    if failed_only:
        query = query.where(webhook_attempts.c.succeeded.is_(False))
    return WebhookAttemptRecord.of_all((await conn.execute(query)).all())


async def replay(
    conn: AsyncConnection,
    endpoint_id: uuid.UUID,
    *,
    since: dt.datetime | None,
    after: int | None,
    now: dt.datetime,
) -> int:
    """Make the endpoint's events since a time (or after an event id) pending again, to
    be sent again in order under their own ids; returns how many."""
    condition = (
        webhook_events.c.occurred_at >= since
        if since is not None
        else webhook_events.c.id > (after or 0)
    )
    result = await conn.execute(
        webhook_events.update()
        .where(webhook_events.c.endpoint_id == endpoint_id, condition)
        .values(status=PENDING, attempts=0, finished_at=None)
    )
    return int(result.rowcount)
