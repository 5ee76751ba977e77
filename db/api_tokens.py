"""API tokens: named, per person, revocable, hashed at rest (ADR 0020).

A token is `bcn_` and 43 URL-safe characters (256 random bits). Only its SHA-256 is
stored, so the secret is shown once, when it is made.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from common.time import utcnow
from db.accounts import Viewer, hash_token, mint_token
from db.records import ApiTokenRecord
from db.tables import api_tokens, people

# A token's last use is written at most this often: a write per request would cost
# every API call a transaction (and on SQLite, the one writer).
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)

# Every column but the hash, which never leaves this module.
_SHOWN: list[sa.Column[Any]] = [
    api_tokens.c.id,
    api_tokens.c.account_id,
    api_tokens.c.person_id,
    api_tokens.c.name,
    api_tokens.c.created_at,
    api_tokens.c.last_used_at,
    api_tokens.c.revoked_at,
]


async def create_token(
    conn: AsyncConnection,
    *,
    account_id: uuid.UUID,
    person_id: uuid.UUID,
    name: str,
    now: dt.datetime,
) -> tuple[ApiTokenRecord, str]:
    """A new token for the person; (its record, the secret to show once)."""
    token_id, secret = await mint_token(
        conn, account_id=account_id, person_id=person_id, name=name, now=now
    )
    row = await get_token(conn, account_id, token_id)
    assert row is not None
    return row, secret


async def get_token(
    conn: AsyncConnection, account_id: uuid.UUID, token_id: uuid.UUID
) -> ApiTokenRecord | None:
    query = (
        api_tokens.select()
        .with_only_columns(*_SHOWN)
        .where(api_tokens.c.id == token_id, api_tokens.c.account_id == account_id)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else ApiTokenRecord.of(row)


async def list_tokens(
    conn: AsyncConnection, account_id: uuid.UUID, person_id: uuid.UUID | None = None
) -> list[ApiTokenRecord]:
    """The account's tokens (or one person's), revoked ones included, oldest first."""
    query = sa.select(*_SHOWN).where(api_tokens.c.account_id == account_id)
    if person_id is not None:
        query = query.where(api_tokens.c.person_id == person_id)
    ordered = query.order_by(api_tokens.c.created_at, api_tokens.c.id)
    return ApiTokenRecord.of_all((await conn.execute(ordered)).all())


async def revoke(
    conn: AsyncConnection, account_id: uuid.UUID, token_id: uuid.UUID, now: dt.datetime
) -> ApiTokenRecord | None:
    """Revoke the token (once: a second revoke keeps the first time); None if the
    account has no such token."""
    await conn.execute(
        api_tokens.update()
        .where(
            api_tokens.c.id == token_id,
            api_tokens.c.account_id == account_id,
            api_tokens.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return await get_token(conn, account_id, token_id)


async def viewer_for_token(conn: AsyncConnection, token: str) -> tuple[Viewer, bool] | None:
    """The signed-in person for a live token, and whether its last use is due to be
    written (see `touch`); None for an unknown or revoked token."""
    row = (
        await conn.execute(
            sa.select(
                api_tokens.c.id,
                api_tokens.c.account_id,
                api_tokens.c.person_id,
                api_tokens.c.last_used_at,
                people.c.role,
            )
            .join(people, people.c.id == api_tokens.c.person_id)
            .where(
                api_tokens.c.token_hash == hash_token(token),
                api_tokens.c.revoked_at.is_(None),
                people.c.erased_at.is_(None),
            )
        )
    ).first()
    if row is None:
        return None
    now = utcnow()
    due = row.last_used_at is None or row.last_used_at <= now - LAST_USED_RESOLUTION
    viewer = Viewer(
        account_id=row.account_id, person_id=row.person_id, token_id=row.id, role=row.role
    )
    return viewer, due


async def touch(conn: AsyncConnection, token_id: uuid.UUID, now: dt.datetime) -> None:
    """Record a use, unless one was recorded within the resolution (a concurrent
    request may have written it already)."""
    await conn.execute(
        api_tokens.update()
        .where(
            api_tokens.c.id == token_id,
            sa.or_(
                api_tokens.c.last_used_at.is_(None),
                api_tokens.c.last_used_at <= now - LAST_USED_RESOLUTION,
            ),
        )
        .values(last_used_at=now)
    )


async def revoked_among(conn: AsyncConnection, token_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these tokens no longer sign anyone in (revoked, gone, or their person
    erased)."""
    wanted = set(token_ids)
    if not wanted:
        return set()
    live = (
        await conn.execute(
            sa.select(api_tokens.c.id)
            .join(people, people.c.id == api_tokens.c.person_id)
            .where(
                api_tokens.c.id.in_(wanted),
                api_tokens.c.revoked_at.is_(None),
                people.c.erased_at.is_(None),
            )
        )
    ).scalars()
    return wanted - set(live)


async def mint_for_employee(
    conn: AsyncConnection,
    account_id: uuid.UUID,
    person_id: uuid.UUID,
    name: str,
    now: dt.datetime,
) -> tuple[uuid.UUID, str] | None:
    """A token for an employee of the account (the CLI's create-token); None when the
    account has no such employee."""
    person = (
        await conn.execute(
            sa.select(people.c.id).where(
                people.c.id == person_id,
                people.c.account_id == account_id,
                people.c.kind == "EMPLOYEE",
                people.c.erased_at.is_(None),
            )
        )
    ).first()
    if person is None:
        return None
    return await mint_token(conn, account_id=account_id, person_id=person_id, name=name, now=now)
