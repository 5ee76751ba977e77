"""Webhook endpoints: where an account's delivery status changes are sent."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from db.records import WebhookEndpointRecord
from db.tables import send_jobs, webhook_endpoints

# How long the previous secret keeps signing after a rotation.
ROTATION_OVERLAP = dt.timedelta(hours=24)


async def create_endpoint(
    conn: AsyncConnection,
    *,
    account_id: uuid.UUID,
    url: str,
    event_types: Sequence[str],
    channels: Sequence[str],
    secret: str,
    now: dt.datetime,
) -> WebhookEndpointRecord:
    endpoint_id = uuid.uuid4()
    await conn.execute(
        webhook_endpoints.insert().values(
            id=endpoint_id,
            account_id=account_id,
            url=url,
            event_types=list(event_types),
            channels=list(channels),
            secret=secret,
            created_at=now,
            updated_at=now,
        )
    )
    row = await get_endpoint(conn, account_id, endpoint_id)
    assert row is not None
    return row


async def get_endpoint(
    conn: AsyncConnection, account_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpointRecord | None:
    """The account's endpoint (another account's is None)."""
    return await _endpoint(
        conn, webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.account_id == account_id
    )


async def endpoint_by_id(
    conn: AsyncConnection, endpoint_id: uuid.UUID
) -> WebhookEndpointRecord | None:
    """Any account's endpoint (the worker's read)."""
    return await _endpoint(conn, webhook_endpoints.c.id == endpoint_id)


async def _endpoint(
    conn: AsyncConnection, *conditions: sa.ColumnElement[bool]
) -> WebhookEndpointRecord | None:
    row = (await conn.execute(webhook_endpoints.select().where(*conditions))).first()
    return None if row is None else WebhookEndpointRecord.of(row)


async def list_endpoints(
    conn: AsyncConnection, account_id: uuid.UUID
) -> list[WebhookEndpointRecord]:
    rows = await conn.execute(
        webhook_endpoints.select()
        .where(webhook_endpoints.c.account_id == account_id)
        .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
    )
    return WebhookEndpointRecord.of_all(rows.all())


async def update_endpoint(
    conn: AsyncConnection,
    account_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    values: dict[str, Any],
    now: dt.datetime,
) -> WebhookEndpointRecord | None:
    await conn.execute(
        webhook_endpoints.update()
        .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.account_id == account_id)
        .values(updated_at=now, **values)
    )
    return await get_endpoint(conn, account_id, endpoint_id)


async def disable(
    conn: AsyncConnection, endpoint_id: uuid.UUID, reason: str, now: dt.datetime
) -> None:
    """No more events are made for it; its pending events wait for it to be enabled."""
    await conn.execute(
        webhook_endpoints.update()
        .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.disabled_at.is_(None))
        .values(disabled_at=now, disabled_reason=reason, updated_at=now)
    )


async def delete_endpoint(
    conn: AsyncConnection, account_id: uuid.UUID, endpoint_id: uuid.UUID
) -> bool:
    """Its events, attempts and job go with it (ON DELETE CASCADE)."""
    result = await conn.execute(
        webhook_endpoints.delete().where(
            webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.account_id == account_id
        )
    )
    return result.rowcount > 0


async def rotate_secret(
    conn: AsyncConnection,
    account_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    new_secret: str,
    now: dt.datetime,
) -> WebhookEndpointRecord | None:
    """The new secret signs from now on; the old one also signs for ROTATION_OVERLAP."""
    await conn.execute(
        webhook_endpoints.update()
        .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.account_id == account_id)
        .values(
            previous_secret=webhook_endpoints.c.secret,
            previous_secret_until=now + ROTATION_OVERLAP,
            secret=new_secret,
            updated_at=now,
        )
    )
    return await get_endpoint(conn, account_id, endpoint_id)


async def record_health(
    conn: AsyncConnection, endpoint_id: uuid.UUID, *, succeeded: bool, now: dt.datetime
) -> dt.datetime | None:
    """A success ends the failure streak; a failure starts one if none runs. Returns
    when the streak began (None after a success)."""
    if succeeded:
        await conn.execute(
            webhook_endpoints.update()
            .where(
                webhook_endpoints.c.id == endpoint_id,
                webhook_endpoints.c.failing_since.is_not(None),
            )
            .values(failing_since=None)
        )
        return None
    # The streak's start is kept if one runs, and read back in the same statement.
    since: dt.datetime | None = (
        await conn.execute(
            webhook_endpoints.update()
            .where(webhook_endpoints.c.id == endpoint_id)
            .values(
                failing_since=sa.func.coalesce(
                    webhook_endpoints.c.failing_since,
                    sa.literal(now, webhook_endpoints.c.failing_since.type),
                )
            )
            .returning(webhook_endpoints.c.failing_since)
        )
    ).scalar_one_or_none()
    return since


async def ensure_job(conn: AsyncConnection, endpoint_id: uuid.UUID, now: dt.datetime) -> None:
    """The endpoint's job, due now (a job in a backoff wait is made due)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(send_jobs).values(
        webhook_endpoint_id=endpoint_id, run_at=now, created_at=now
    )
    # An upsert: the trigger on deliveries may insert the job at the same moment.
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[send_jobs.c.webhook_endpoint_id], set_={"run_at": now}
        )
    )
