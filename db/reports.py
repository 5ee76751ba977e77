"""Provider reports seen so far: each (channel, provider id, status) is applied once."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import provider_reports


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
