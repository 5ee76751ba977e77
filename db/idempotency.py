"""Idempotency keys: taken in the transaction of the mutation they guard.

`claim` is the mutation's first statement. A retry of a committed request finds the key
by a plain read. Otherwise its INSERT meets the primary key (account, key): on
PostgreSQL a second transaction inserting the same key waits there until the first one
ends, and then either takes the key (the first rolled back) or finds the first's
committed row, result and all; on SQLite writers take turns anyway. So a key is never
seen half-used, and of two concurrent requests with one key exactly one does the work.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import idempotency_keys


@dataclass(frozen=True)
class UsedKey:
    """A key as its first use left it."""

    mutation: str
    input_hash: str
    result_id: uuid.UUID | None
    created_at: dt.datetime


async def claim(
    conn: AsyncConnection,
    *,
    account_id: uuid.UUID,
    key: str,
    mutation: str,
    input_hash: str,
    now: dt.datetime,
    expired_before: dt.datetime,
) -> UsedKey | None:
    """Take `key` for this transaction (None), or the key's first use while it lives.

    A key first used before `expired_before` is taken over as if it were new: the
    purge may not have come by yet."""
    # A retry of a committed request is answered by this read alone (no lock, no write).
    used = await _used(conn, account_id, key)
    if used is not None and used.created_at >= expired_before:
        return used
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        idempotency_keys
    ).values(
        account_id=account_id,
        key=key,
        mutation=mutation,
        input_hash=input_hash,
        result_id=None,
        created_at=now,
    )
    taken = insert.on_conflict_do_update(
        index_elements=[idempotency_keys.c.account_id, idempotency_keys.c.key],
        set_={
            "mutation": insert.excluded.mutation,
            "input_hash": insert.excluded.input_hash,
            "result_id": None,
            "created_at": insert.excluded.created_at,
        },
        where=idempotency_keys.c.created_at < expired_before,
    ).returning(idempotency_keys.c.key)
    if (await conn.execute(taken)).first() is not None:
        return None
    # Another request holds the key, live: it made the INSERT above wait until it
    # committed. A new statement (READ COMMITTED) sees its row, result and all.
    used = await _used(conn, account_id, key)
    assert used is not None
    return used


async def _used(conn: AsyncConnection, account_id: uuid.UUID, key: str) -> UsedKey | None:
    row = (
        await conn.execute(
            sa.select(
                idempotency_keys.c.mutation,
                idempotency_keys.c.input_hash,
                idempotency_keys.c.result_id,
                idempotency_keys.c.created_at,
            ).where(idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key)
        )
    ).first()
    return None if row is None else UsedKey(*row)


async def record_result(
    conn: AsyncConnection, *, account_id: uuid.UUID, key: str, result_id: uuid.UUID
) -> None:
    """What the mutation made, in the transaction that claimed the key."""
    await conn.execute(
        idempotency_keys.update()
        .where(idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key)
        .values(result_id=result_id)
    )


async def delete_expired(conn: AsyncConnection, *, used_before: dt.datetime, limit: int) -> int:
    """Delete up to `limit` keys first used before `used_before`; how many went."""
    expired = (
        sa.select(idempotency_keys.c.account_id, idempotency_keys.c.key)
        .where(idempotency_keys.c.created_at < used_before)
        .limit(limit)
    )
    result = await conn.execute(
        idempotency_keys.delete().where(
            sa.tuple_(idempotency_keys.c.account_id, idempotency_keys.c.key).in_(expired)
        )
    )
    return int(result.rowcount)
