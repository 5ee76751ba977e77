"""People's roles in their account (domain/roles.py); the rest of a person's columns
are written by db/accounts.py."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from db.records import PersonRecord
from db.tables import people

OWNER = "OWNER"


async def set_role(
    conn: AsyncConnection, account_id: uuid.UUID, person_id: uuid.UUID, role: str
) -> PersonRecord:
    await conn.execute(
        people.update()
        .where(people.c.id == person_id, people.c.account_id == account_id)
        .values(role=role)
    )
    return PersonRecord.of(
        (await conn.execute(people.select().where(people.c.id == person_id))).one()
    )


async def lock_owners(conn: AsyncConnection, account_id: uuid.UUID) -> list[uuid.UUID]:
    """The account's owners, their rows locked until the transaction ends (PostgreSQL;
    SQLite's writes are serialised already)."""
    query = (
        sa.select(people.c.id)
        .where(
            people.c.account_id == account_id,
            people.c.role == OWNER,
            people.c.erased_at.is_(None),
        )
        .with_for_update()
    )
    return list((await conn.execute(query)).scalars())


async def get_person(
    conn: AsyncConnection, account_id: uuid.UUID, person_id: uuid.UUID
) -> PersonRecord | None:
    query = people.select().where(people.c.id == person_id, people.c.account_id == account_id)
    row = (await conn.execute(query)).first()
    return None if row is None else PersonRecord.of(row)
