"""Invitations: a sign-in link for an employee, single use, expiring. Only the SHA-256
of the link's secret is stored (ADR 0020)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import fields

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from db.accounts import hash_token
from db.records import InvitationRecord
from db.tables import invitations, people

# Every column but the secret's hash.
_RETURNED = [field.name for field in fields(InvitationRecord)]


async def create_invitation(
    conn: AsyncConnection,
    *,
    invitation_id: uuid.UUID,
    account_id: uuid.UUID,
    person_id: uuid.UUID,
    secret: str,
    now: dt.datetime,
    expires_at: dt.datetime,
) -> None:
    await conn.execute(
        invitations.insert().values(
            id=invitation_id,
            account_id=account_id,
            person_id=person_id,
            secret_hash=hash_token(secret),
            created_at=now,
            expires_at=expires_at,
        )
    )


async def redeem(
    conn: AsyncConnection, invitation_id: uuid.UUID, secret: str, now: dt.datetime
) -> InvitationRecord | None:
    """Use the invitation up, if it is unused, unexpired and its person can still sign
    in: one conditional UPDATE, so two concurrent redeems cannot both succeed. The used
    invitation, or None."""
    signs_in = (
        sa.select(people.c.id)
        .where(
            people.c.id == invitations.c.person_id,
            people.c.kind == "EMPLOYEE",
            people.c.erased_at.is_(None),
        )
        .exists()
    )
    result = await conn.execute(
        invitations.update()
        .where(
            invitations.c.id == invitation_id,
            invitations.c.secret_hash == hash_token(secret),
            invitations.c.used_at.is_(None),
            invitations.c.expires_at > now,
            signs_in,
        )
        .values(used_at=now)
        .returning(*(invitations.c[name] for name in _RETURNED))
    )
    row = result.first()
    return None if row is None else InvitationRecord.of(row)
