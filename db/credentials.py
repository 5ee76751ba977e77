"""Provider credentials per account, and finding an account from a callback's payload.

Credentials come back as plain field -> value mappings (the names of
channels.base.Credentials' fields); the channel layer builds its own type.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import channel_credentials

FIELDS = tuple(column.name for column in channel_credentials.c if column.name != "account_id")


Credentials = dict[str, str | None]


def _credentials(row: Any) -> Credentials:
    if row is None:
        return {}
    return {name: getattr(row, name) for name in FIELDS}


async def get_credentials(conn: AsyncConnection, account_id: uuid.UUID) -> Credentials:
    row = (
        await conn.execute(
            channel_credentials.select().where(channel_credentials.c.account_id == account_id)
        )
    ).first()
    return _credentials(row)


async def set_credentials(
    conn: AsyncConnection, account_id: uuid.UUID, values: dict[str, str | None]
) -> None:
    """Set the given fields (None clears one); the others keep their values."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown credential fields: {sorted(unknown)}")
    updated = await conn.execute(
        channel_credentials.update()
        .where(channel_credentials.c.account_id == account_id)
        .values(**values)
    )
    if updated.rowcount == 0:
        await conn.execute(channel_credentials.insert().values(account_id=account_id, **values))


async def account_for_whatsapp(
    conn: AsyncConnection, phone_number_id: str
) -> tuple[uuid.UUID, Credentials] | None:
    return await _find(conn, channel_credentials.c.whatsapp_phone_number_id == phone_number_id)


async def accounts_for_twilio(
    conn: AsyncConnection, account_sid: str
) -> list[tuple[uuid.UUID, Credentials]]:
    """Several tenants may share one Twilio account (sub-accounts are optional)."""
    rows = (
        await conn.execute(
            channel_credentials.select().where(
                channel_credentials.c.twilio_account_sid == account_sid
            )
        )
    ).all()
    return [(row.account_id, _credentials(row)) for row in rows]


async def whatsapp_verify_tokens(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(
        sa.select(channel_credentials.c.whatsapp_verify_token).where(
            channel_credentials.c.whatsapp_verify_token.is_not(None)
        )
    )
    return [token for (token,) in rows.all()]


async def _find(conn: AsyncConnection, condition: Any) -> tuple[uuid.UUID, Credentials] | None:
    row = (await conn.execute(channel_credentials.select().where(condition))).first()
    return None if row is None else (row.account_id, _credentials(row))
