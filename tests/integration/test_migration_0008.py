"""Migration 0008 on a database of before the team (ADR 0020): each account's first
employee becomes OWNER, the other employees MEMBER, contacts no role; existing tokens are
named "first token" and keep signing in; it goes down and up again. On SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from db.accounts import hash_token
from db.api_tokens import viewer_for_token
from db.engine import Database
from tests.integration.test_migration_0007 import T0, fresh_url, migrate
from tests.integration.test_migrations import _INDEX_NAMES

__all__ = ["fresh_url"]  # the fixture, used by name

# The tables as 0007 left them (db/tables.py has moved on).
accounts = sa.table(
    "accounts",
    sa.column("id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("plan", sa.String()),
    sa.column("open_tracking", sa.Boolean()),
    sa.column("show_all_recipients", sa.Boolean()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
people = sa.table(
    "people",
    sa.column("id", sa.Uuid()),
    sa.column("account_id", sa.Uuid()),
    sa.column("kind", sa.String()),
    sa.column("name", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
api_tokens = sa.table(
    "api_tokens",
    sa.column("id", sa.Uuid()),
    sa.column("account_id", sa.Uuid()),
    sa.column("person_id", sa.Uuid()),
    sa.column("token_hash", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


async def test_the_first_employee_of_each_account_becomes_owner(fresh_url: str) -> None:
    # given two accounts of before 0008: employees and a contact, and a token
    await migrate(fresh_url, "0007")
    db = Database(fresh_url)
    try:
        ids: dict[str, uuid.UUID] = {}
        async with db.write() as conn:
            for account in ("a", "b"):
                ids[account] = uuid.uuid4()
                await conn.execute(
                    accounts.insert().values(
                        id=ids[account],
                        name=account,
                        plan="PAID",
                        open_tracking=True,
                        show_all_recipients=False,
                        created_at=T0,
                    )
                )
            # Made out of order: the earliest created is the account's creator.
            for offset, (name, account, kind) in enumerate(
                [
                    ("a-second", "a", "EMPLOYEE"),
                    ("a-contact", "a", "CONTACT"),
                    ("b-first", "b", "EMPLOYEE"),
                    ("a-first", "a", "EMPLOYEE"),
                ]
            ):
                ids[name] = uuid.uuid4()
                created = T0 + dt.timedelta(seconds=10 - offset if account == "a" else 1)
                await conn.execute(
                    people.insert().values(
                        id=ids[name],
                        account_id=ids[account],
                        kind=kind,
                        name=name,
                        created_at=created,
                    )
                )
            await conn.execute(
                api_tokens.insert().values(
                    id=uuid.uuid4(),
                    account_id=ids["a"],
                    person_id=ids["a-first"],
                    token_hash=hash_token("bcn_old"),
                    created_at=T0,
                )
            )

        # when the database is migrated (and down and up again)
        await migrate(fresh_url, "0008")
        await migrate(fresh_url, "0007", down=True)
        await migrate(fresh_url, "0008")

        # then each account has its first employee as OWNER, the others MEMBER
        async with db.read() as conn:
            roles: dict[str, str | None] = dict(
                (await conn.execute(sa.text("SELECT name, role FROM people ORDER BY name"))).all()
            )
            found = await viewer_for_token(conn, "bcn_old")
            name = (await conn.execute(sa.text("SELECT name FROM api_tokens"))).scalar_one()
            indexes = set((await conn.execute(sa.text(_INDEX_NAMES[db.dialect_name]))).scalars())
        assert roles == {
            "a-contact": None,
            "a-first": "OWNER",
            "a-second": "MEMBER",
            "b-first": "OWNER",
        }
        # and the old token still signs its person in, named "first token"
        assert found is not None
        assert found[0].person_id == ids["a-first"]
        assert found[0].role == "OWNER"
        assert name == "first token"
        # and the round trip kept the index on lower(email), which SQLite cannot reflect
        assert "uq_people_account_id_email" in indexes
    finally:
        await db.dispose()
