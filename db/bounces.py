"""Inbound bounces, auto-replies and complaints, kept as received."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from db.records import BounceRecord, MessageRecord
from db.tables import bounces, insert_new, messages


async def insert_bounce(
    conn: AsyncConnection,
    *,
    account_id: uuid.UUID | None,
    message_id: uuid.UUID | None,
    delivery_id: uuid.UUID | None,
    received_at: dt.datetime,
    source: str,
    kind: str,
    parsed: bool,
    summary: str,
    raw: bytes,
) -> uuid.UUID:
    return await insert_new(
        conn,
        bounces,
        account_id=account_id,
        message_id=message_id,
        delivery_id=delivery_id,
        received_at=received_at,
        source=source,
        kind=kind,
        parsed=parsed,
        summary=summary,
        raw=raw,
    )


async def list_bounces(
    conn: AsyncConnection, account_id: uuid.UUID, *, unparsed_only: bool, limit: int = 200
) -> list[BounceRecord]:
    # Everything but the raw message, which only an operator's review needs.
    query = sa.select(*(column for column in bounces.c if column.name != "raw")).where(
        bounces.c.account_id == account_id
    )
    if unparsed_only:
        query = query.where(bounces.c.parsed.is_(False))
    rows = await conn.execute(query.order_by(bounces.c.received_at.desc()).limit(limit))
    return BounceRecord.of_all(rows.all())


async def message_by_id(conn: AsyncConnection, message_id: uuid.UUID) -> MessageRecord | None:
    row = (await conn.execute(messages.select().where(messages.c.id == message_id))).first()
    return None if row is None else MessageRecord.of(row)


async def message_by_header(conn: AsyncConnection, header_message_id: str) -> MessageRecord | None:
    row = (
        await conn.execute(
            messages.select().where(messages.c.header_message_id == header_message_id)
        )
    ).first()
    return None if row is None else MessageRecord.of(row)
