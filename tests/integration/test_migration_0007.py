"""Migration 0007 on a database that already holds the same address on several people
(ADR 0017): one holder keeps each address, the others' subscriptions go to it, and the
unique indexes are built; it goes down and up again. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import IntegrityError

from db.engine import Database
from db.migrate import alembic_config
from db.tables import accounts, people, scenarios, task_subscribers, tasks
from tests.conftest import POSTGRES_ADMIN_URL
from tests.support.services import require_service

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own (migrations are run by the test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'beacon.sqlite3'}"
        return
    name = f"beacon_migration_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        require_service("PostgreSQL", str(error))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield (
            sa.engine.make_url(POSTGRES_ADMIN_URL)
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def migrate(url: str, revision: str, *, down: bool = False) -> None:
    step = command.downgrade if down else command.upgrade
    await asyncio.to_thread(step, alembic_config(url), revision)


class Accounts:
    """People and tasks written as they were before 0007 (no index stops duplicates)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.clock = 0

    async def account(self) -> uuid.UUID:
        account_id = uuid.uuid4()
        async with self.db.write() as conn:
            await conn.execute(
                accounts.insert().values(
                    id=account_id,
                    name="Acme",
                    plan="PAID",
                    open_tracking=True,
                    show_all_recipients=False,
                    created_at=T0,
                )
            )
        return account_id

    async def person(self, account_id: uuid.UUID, name: str, **addresses: Any) -> uuid.UUID:
        """People are made one second apart, in call order."""
        self.clock += 1
        person_id = uuid.uuid4()
        async with self.db.write() as conn:
            await conn.execute(
                people.insert().values(
                    id=person_id,
                    account_id=account_id,
                    kind=addresses.pop("kind", "CONTACT"),
                    name=name,
                    created_at=T0 + dt.timedelta(seconds=self.clock),
                    **addresses,
                )
            )
        return person_id

    async def task(self, account_id: uuid.UUID, subscribers: list[uuid.UUID]) -> uuid.UUID:
        task_id = uuid.uuid4()
        async with self.db.write() as conn:
            await conn.execute(
                tasks.insert().values(id=task_id, account_id=account_id, title="T", created_at=T0)
            )
            await conn.execute(
                task_subscribers.insert(),
                [
                    {"task_id": task_id, "person_id": person_id, "position": position}
                    for position, person_id in enumerate(subscribers)
                ],
            )
        return task_id


async def addresses(db: Database, person_id: uuid.UUID) -> tuple[Any, ...]:
    async with db.read() as conn:
        row = (
            await conn.execute(
                sa.select(people.c.email, people.c.phone).where(people.c.id == person_id)
            )
        ).one()
    return tuple(row)


async def subscribers(db: Database, task_id: uuid.UUID) -> list[uuid.UUID]:
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(task_subscribers.c.person_id)
            .where(task_subscribers.c.task_id == task_id)
            .order_by(task_subscribers.c.position)
        )
        return list(rows.scalars())


async def test_duplicate_addresses_are_left_to_one_holder_who_takes_over_the_others_tasks(
    fresh_url: str,
) -> None:
    # Given a database at 0006 whose people share addresses
    await migrate(fresh_url, "0006")
    db = Database(fresh_url)
    try:
        given = Accounts(db)
        acme, globex = await given.account(), await given.account()
        alias = await given.person(acme, "Boss alias", email="boss@acme.test")
        boss = await given.person(acme, "Boss", email="boss@acme.test", kind="EMPLOYEE")
        ann = await given.person(acme, "Ann", email="ann@example.test")
        ann_again = await given.person(acme, "Ann (again)", email="Ann@Example.TEST")
        ann_phone = await given.person(
            acme, "Ann's phone", email="ann@example.test", phone="+15550001"
        )
        zed = await given.person(acme, "Zed", phone="+15550001")
        other = await given.person(globex, "Ann at Globex", email="ann@example.test")
        first = await given.task(acme, [ann_again, zed])
        second = await given.task(acme, [ann, ann_phone])
        scenario_id = uuid.uuid4()
        async with db.write() as conn:
            await conn.execute(
                scenarios.insert().values(
                    id=scenario_id,
                    account_id=acme,
                    name="Tell Ann",
                    trigger="TASK_CREATED",
                    action="EMAIL_PERSON",
                    person_id=ann_again,
                    template="New task",
                    created_at=T0,
                )
            )

        # When it is migrated to 0007
        await migrate(fresh_url, "0007")

        # Then the first holder keeps each address (an employee before a contact)
        assert await addresses(db, boss) == ("boss@acme.test", None)
        assert await addresses(db, alias) == (None, None)
        assert await addresses(db, ann) == ("ann@example.test", None)
        assert await addresses(db, ann_again) == (None, None)
        assert await addresses(db, ann_phone) == (None, "+15550001")
        assert await addresses(db, zed) == (None, None)
        # And another account's people are not compared with these
        assert await addresses(db, other) == ("ann@example.test", None)
        # And the holders receive what the others were subscribed to, once
        assert await subscribers(db, first) == [ann_again, zed, ann, ann_phone]
        assert await subscribers(db, second) == [ann, ann_phone]
        # And a scenario that emailed a cleared person emails the address's holder
        async with db.read() as conn:
            person_id = (
                await conn.execute(
                    sa.select(scenarios.c.person_id).where(scenarios.c.id == scenario_id)
                )
            ).scalar_one()
        assert person_id == ann

        # And from now on the database refuses a second holder, whatever the case
        with pytest.raises(IntegrityError):
            await given.person(acme, "Ann once more", email="ANN@example.test")

        # When it goes down and up again, with a duplicate written in between
        await migrate(fresh_url, "0006", down=True)
        late = await given.person(acme, "Ann, late", email="ann@EXAMPLE.test")
        await migrate(fresh_url, "head")

        # Then that one is cleared too
        assert await addresses(db, late) == (None, None)
        assert await addresses(db, ann) == ("ann@example.test", None)
    finally:
        await db.dispose()
