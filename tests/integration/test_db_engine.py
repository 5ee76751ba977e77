"""The embedded SQLite database: connection settings and serialised writers (db/engine.py)."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from common.domain import PersonKind
from db import accounts as db_accounts
from db.engine import Database
from db.tables import deliveries
from tests.support.builders import commented_task, delivery


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "beacon.sqlite3"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> AsyncIterator[Database]:
    database = Database(sqlite_url)
    try:
        yield database
    finally:
        await database.dispose()


async def pragma(db: Database, name: str, *, write: bool = False) -> object:
    block = db.write() if write else db.read()
    async with block as conn:
        return (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar_one()


async def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(
    sqlite_db: Database,
) -> None:
    # given / when: reads and writes, on the pool's connections
    for write in (False, True):
        journal_mode = await pragma(sqlite_db, "journal_mode", write=write)
        foreign_keys = await pragma(sqlite_db, "foreign_keys", write=write)
        busy_timeout = await pragma(sqlite_db, "busy_timeout", write=write)

        # then
        assert journal_mode == "wal"
        assert foreign_keys == 1
        assert isinstance(busy_timeout, int)
        assert busy_timeout >= 1000


async def test_sqlite_enforces_foreign_keys(sqlite_db: Database) -> None:
    # when: a person in an account that does not exist
    with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"):
        async with sqlite_db.write() as conn:
            await db_accounts.add_person(
                conn,
                account_id=uuid.uuid4(),
                kind=PersonKind.CONTACT,
                name="Nobody",
                email=None,
            )

    # then
    async with sqlite_db.read() as conn:
        count = (await conn.exec_driver_sql("SELECT count(*) FROM people")).scalar_one()
    assert count == 0


async def increment(db: Database, delivery_id: uuid.UUID) -> None:
    """Read, then write what was read plus one: the pattern that fails with "database is
    locked" (or loses updates) when writers are not serialised."""
    async with db.write() as conn:
        current = (
            await conn.execute(
                sa.select(deliveries.c.attempts).where(deliveries.c.id == delivery_id)
            )
        ).scalar_one()
        await conn.execute(
            deliveries.update().where(deliveries.c.id == delivery_id).values(attempts=current + 1)
        )


async def test_concurrent_sqlite_writers_that_read_then_write_all_succeed(
    sqlite_db: Database,
) -> None:
    # given
    scenario = await commented_task(sqlite_db, ["ann@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids

    # when: 20 writers at once
    async with asyncio.timeout(30):
        await asyncio.gather(*(increment(sqlite_db, delivery_id) for _ in range(20)))

    # then: none failed and none lost its update
    assert (await delivery(sqlite_db, delivery_id)).attempts == 20


async def test_writers_from_two_handles_on_one_sqlite_file_wait_for_each_other(
    sqlite_db: Database, sqlite_url: str
) -> None:
    # given: a second handle on the same file, as a second process would have (its
    # asyncio.Lock knows nothing of the first one's: only BEGIN IMMEDIATE orders them)
    scenario = await commented_task(sqlite_db, ["ann@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    other = Database(sqlite_url)
    try:
        # when: 10 writers on each handle at once
        async with asyncio.timeout(30):
            await asyncio.gather(*(increment(db, delivery_id) for db in [sqlite_db, other] * 10))
    finally:
        await other.dispose()

    # then
    assert (await delivery(sqlite_db, delivery_id)).attempts == 20


async def test_a_failed_write_block_rolls_back(sqlite_db: Database) -> None:
    # given
    scenario = await commented_task(sqlite_db, ["ann@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids

    async def fail_after_writing() -> None:
        async with sqlite_db.write() as conn:
            await conn.execute(
                deliveries.update().where(deliveries.c.id == delivery_id).values(attempts=7)
            )
            raise RuntimeError("boom")

    # when
    with pytest.raises(RuntimeError):
        await fail_after_writing()

    # then: nothing was kept, and the write lock is free for the next writer
    assert (await delivery(sqlite_db, delivery_id)).attempts == 0
    async with asyncio.timeout(5):
        await increment(sqlite_db, delivery_id)
    assert (await delivery(sqlite_db, delivery_id)).attempts == 1
