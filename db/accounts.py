"""Accounts, people and API tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from common.domain import PersonKind, Plan
from common.time import utcnow
from db.records import AccountRecord, PersonRecord
from db.tables import accounts, api_tokens, people

TOKEN_PREFIX = "bcn_"  # noqa: S105 - a prefix that makes leaked tokens greppable


def hash_token(token: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewAccount:
    account_id: uuid.UUID
    person_id: uuid.UUID
    token: str


class AddressTaken(Exception):
    """Another person of the account already has this address on this channel."""

    def __init__(self, column: str, holder: PersonRecord) -> None:
        super().__init__(column)
        self.column = column
        self.holder = holder


# The columns that hold a person's address on a channel: one person per address in an
# account (the unique indexes of db/tables.py).
ADDRESS_COLUMNS = ("email", "telegram_chat_id", "phone", "webhook_url")


@dataclass(frozen=True)
class Viewer:
    account_id: uuid.UUID
    person_id: uuid.UUID
    # The token that signed them in (db/api_tokens.py) and their role then.
    token_id: uuid.UUID | None = None
    role: str | None = None


async def create_account(
    conn: AsyncConnection, *, name: str, plan: Plan, email: str, person_name: str | None = None
) -> NewAccount:
    """An account with its first employee and an API token for that employee."""
    now = utcnow()
    account_id, person_id = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        accounts.insert().values(
            id=account_id,
            name=name,
            plan=plan.value,
            open_tracking=True,
            show_all_recipients=False,
            smtp_relay=None,
            created_at=now,
        )
    )
    await conn.execute(
        people.insert().values(
            id=person_id,
            account_id=account_id,
            kind=PersonKind.EMPLOYEE.value,
            name=person_name or email.split("@", 1)[0],
            email=email,
            role="OWNER",  # the account's first employee owns it (domain/roles.py Role)
            created_at=now,
        )
    )
    token = await issue_token(conn, account_id=account_id, person_id=person_id)
    return NewAccount(account_id=account_id, person_id=person_id, token=token)


async def issue_token(conn: AsyncConnection, *, account_id: uuid.UUID, person_id: uuid.UUID) -> str:
    """The account's first token (named by the column's default)."""
    _, secret = await mint_token(conn, account_id=account_id, person_id=person_id)
    return secret


async def mint_token(
    conn: AsyncConnection,
    *,
    account_id: uuid.UUID,
    person_id: uuid.UUID,
    name: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[uuid.UUID, str]:
    """Every API token is made here: `bcn_` and 256 random bits, stored as its SHA-256.
    Returns the token's id and the secret, which is shown once."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = uuid.uuid4()
    values: dict[str, Any] = {"name": name} if name is not None else {}
    await conn.execute(
        api_tokens.insert().values(
            id=token_id,
            account_id=account_id,
            person_id=person_id,
            token_hash=hash_token(secret),
            created_at=now or utcnow(),
            **values,
        )
    )
    return token_id, secret


async def count_accounts(conn: AsyncConnection) -> int:
    return int((await conn.execute(sa.select(sa.func.count()).select_from(accounts))).scalar_one())


async def get_account(conn: AsyncConnection, account_id: uuid.UUID) -> AccountRecord:
    return AccountRecord.of(
        (await conn.execute(accounts.select().where(accounts.c.id == account_id))).one()
    )


async def accounts_by_ids(
    conn: AsyncConnection, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, AccountRecord]:
    rows = (await conn.execute(accounts.select().where(accounts.c.id.in_(ids)))).all()
    return {row.id: AccountRecord.of(row) for row in rows}


async def update_account(
    conn: AsyncConnection, account_id: uuid.UUID, values: dict[str, Any]
) -> AccountRecord:
    if values:
        await conn.execute(accounts.update().where(accounts.c.id == account_id).values(**values))
    return await get_account(conn, account_id)


async def set_plan(conn: AsyncConnection, account_id: uuid.UUID, plan: Plan) -> bool:
    result = await conn.execute(
        accounts.update().where(accounts.c.id == account_id).values(plan=plan.value)
    )
    return result.rowcount > 0


async def add_person(
    conn: AsyncConnection,
    *,
    account_id: uuid.UUID,
    kind: PersonKind,
    name: str,
    email: str | None = None,
    telegram_chat_id: str | None = None,
    phone: str | None = None,
    webhook_url: str | None = None,
    disabled_channels: Sequence[str] = (),
    tracking_consent: str = "UNKNOWN",
    role: str | None = None,
) -> PersonRecord:
    """A new person; AddressTaken when one of the addresses is another person's."""
    person_id = uuid.uuid4()
    addresses = {
        "email": email,
        "telegram_chat_id": telegram_chat_id,
        "phone": phone,
        "webhook_url": webhook_url,
    }
    insert = people.insert().values(
        id=person_id,
        account_id=account_id,
        kind=kind.value,
        name=name,
        disabled_channels=list(disabled_channels),
        tracking_consent=tracking_consent,
        role=role,
        created_at=utcnow(),
        **addresses,
    )
    await _claiming_addresses(conn, insert, account_id, person_id, addresses)
    return PersonRecord.of(
        (await conn.execute(people.select().where(people.c.id == person_id))).one()
    )


async def update_person(
    conn: AsyncConnection, account_id: uuid.UUID, person_id: uuid.UUID, values: dict[str, Any]
) -> PersonRecord | None:
    """Change the given columns of a person of this account; None if there is none;
    AddressTaken when a new address is another person's."""
    query = people.select().where(people.c.id == person_id, people.c.account_id == account_id)
    if (await conn.execute(query)).first() is None:
        return None
    if values:
        update = people.update().where(people.c.id == person_id).values(**values)
        await _claiming_addresses(conn, update, account_id, person_id, values)
    return PersonRecord.of((await conn.execute(query)).one())


async def _claiming_addresses(
    conn: AsyncConnection,
    statement: sa.Executable,
    account_id: uuid.UUID,
    person_id: uuid.UUID,
    values: dict[str, Any],
) -> None:
    """Run the statement that writes a person's addresses. The unique indexes decide,
    so that of two concurrent claims on one address only one wins; the loser's
    savepoint is rolled back and the transaction can still look up the winner."""
    try:
        async with conn.begin_nested():
            await conn.execute(statement)
    except IntegrityError:
        for column in ADDRESS_COLUMNS:
            value = values.get(column)
            holder = (
                None if value is None else await address_holder(conn, account_id, column, value)
            )
            if holder is not None and holder.id != person_id:
                raise AddressTaken(column, holder) from None
        raise


async def address_holder(
    conn: AsyncConnection, account_id: uuid.UUID, column: str, address: str
) -> PersonRecord | None:
    """The person of the account with this address in `column`, compared as its unique
    index compares it (emails without case)."""
    held = people.c[column]
    same = sa.func.lower(held) == sa.func.lower(address) if column == "email" else held == address
    row = (
        await conn.execute(people.select().where(people.c.account_id == account_id, same))
    ).first()
    return None if row is None else PersonRecord.of(row)


async def list_people(conn: AsyncConnection, account_id: uuid.UUID) -> list[PersonRecord]:
    rows = await conn.execute(
        people.select()
        .where(people.c.account_id == account_id, people.c.erased_at.is_(None))
        .order_by(people.c.created_at, people.c.id)
    )
    return PersonRecord.of_all(rows.all())


async def people_by_ids(
    conn: AsyncConnection, account_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, PersonRecord]:
    rows = (
        await conn.execute(
            people.select().where(people.c.account_id == account_id, people.c.id.in_(ids))
        )
    ).all()
    return {row.id: PersonRecord.of(row) for row in rows}
