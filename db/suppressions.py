"""The account's suppression list: addresses that must not be sent to again."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from db.records import SuppressionRecord
from db.tables import suppressions


def normal(channel: str, address: str) -> str:
    """Email addresses compare case-insensitively; the others as they are."""
    return address.strip().lower() if channel == "EMAIL" else address.strip()


async def suppress(
    conn: AsyncConnection,
    *,
    account_id: uuid.UUID,
    channel: str,
    address: str,
    reason: str,
    now: dt.datetime,
) -> None:
    """Add the address (the first reason is kept when it is already there)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    await conn.execute(
        insert(suppressions)
        .values(
            id=uuid.uuid4(),
            account_id=account_id,
            channel=channel,
            address=normal(channel, address),
            reason=reason,
            created_at=now,
        )
        .on_conflict_do_nothing()
    )


class Addressed(Protocol):
    """What suppressing a delivery's address reads of it."""

    @property
    def account_id(self) -> uuid.UUID: ...
    @property
    def channel(self) -> str: ...
    @property
    def address(self) -> str: ...


async def suppress_address_of(
    conn: AsyncConnection, delivery: Addressed, *, reason: str, now: dt.datetime
) -> None:
    """Suppress the address a delivery went to, in its account and channel (a hard
    bounce, a complaint)."""
    await suppress(
        conn,
        account_id=delivery.account_id,
        channel=delivery.channel,
        address=delivery.address,
        reason=reason,
        now=now,
    )


async def reasons(
    conn: AsyncConnection, account_id: uuid.UUID, channel: str, addresses: Sequence[str]
) -> dict[str, str]:
    """The suppressed ones among `addresses` (as given), with their reasons."""
    wanted = {normal(channel, address): address for address in addresses}
    if not wanted:
        return {}
    rows = await conn.execute(
        sa.select(suppressions.c.address, suppressions.c.reason).where(
            suppressions.c.account_id == account_id,
            suppressions.c.channel == channel,
            suppressions.c.address.in_(list(wanted)),
        )
    )
    return {wanted[row.address]: row.reason for row in rows}


async def find(
    conn: AsyncConnection, account_id: uuid.UUID, channel: str, address: str
) -> SuppressionRecord | None:
    """The suppression of this address on this channel, if there is one."""
    return (await find_many(conn, account_id, [(channel, address)])).get((channel, address))


async def find_many(
    conn: AsyncConnection, account_id: uuid.UUID, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], SuppressionRecord]:
    """The suppression of each (channel, address) that has one, by the key as given."""
    wanted: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for channel, address in keys:
        wanted[(channel, normal(channel, address))].append((channel, address))
    if not wanted:
        return {}
    rows = await conn.execute(
        suppressions.select().where(
            suppressions.c.account_id == account_id,
            sa.tuple_(suppressions.c.channel, suppressions.c.address).in_(list(wanted)),
        )
    )
    return {
        key: SuppressionRecord.of(row) for row in rows for key in wanted[(row.channel, row.address)]
    }


async def list_suppressions(
    conn: AsyncConnection, account_id: uuid.UUID
) -> list[SuppressionRecord]:
    rows = await conn.execute(
        suppressions.select()
        .where(suppressions.c.account_id == account_id)
        .order_by(suppressions.c.created_at.desc())
    )
    return SuppressionRecord.of_all(rows.all())


async def lift(conn: AsyncConnection, account_id: uuid.UUID, channel: str, address: str) -> bool:
    result = await conn.execute(
        suppressions.delete().where(
            suppressions.c.account_id == account_id,
            suppressions.c.channel == channel,
            suppressions.c.address == normal(channel, address),
        )
    )
    return result.rowcount > 0
