"""Migration 0011 builds its indexes on PostgreSQL without blocking writes to deliveries
(CREATE INDEX CONCURRENTLY), and leaves them valid."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from db.engine import Database
from tests.integration.test_migration_0007 import fresh_url, migrate
from tests.integration.test_migrations import _INDEX_NAMES
from tests.support.waiting import eventually, sessions_waiting_on_a_lock

__all__ = ["fresh_url"]  # the fixture, used by name

INDEXES = (
    "ix_deliveries_account_id_queued_at",
    "ix_deliveries_account_id_address_queued_at",
    "ix_deliveries_account_id_state_queued_at",
    "ix_deliveries_recipient_id_channel_state",
)
VALIDITY = sa.text(
    "SELECT c.relname, i.indisvalid FROM pg_index i"
    " JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = ANY(:names)"
)
# Writing to a table takes this lock; a plain CREATE INDEX waits for it and makes every
# later writer queue behind itself.
WRITE_TO_DELIVERIES = sa.text("UPDATE deliveries SET state = state WHERE false")


@pytest.mark.parametrize("fresh_url", ["postgres"], indirect=True)
async def test_writes_to_deliveries_go_on_while_0011_builds_its_indexes(fresh_url: str) -> None:
    await migrate(fresh_url, "0010")
    db = Database(fresh_url)
    try:
        async with db.engine.connect() as older:
            # given: a transaction that wrote to deliveries and is still open
            await older.execute(WRITE_TO_DELIVERIES)

            # when: the migration starts, and waits for that transaction to end
            migration = asyncio.create_task(migrate(fresh_url, "0011"))
            await eventually(lambda: sessions_waiting_on_a_lock(db))

            # then: a new write to deliveries does not wait for the migration
            async with db.engine.connect() as newer:
                await newer.execute(sa.text("SET LOCAL statement_timeout = '5s'"))
                await newer.execute(WRITE_TO_DELIVERIES)
                await newer.commit()
            assert not migration.done()
            await older.rollback()

        # and the migration finishes with every index valid
        await asyncio.wait_for(migration, timeout=60)
        async with db.read() as conn:
            rows = (await conn.execute(VALIDITY, {"names": list(INDEXES)})).all()
        validity = {str(name): bool(valid) for name, valid in rows}
        assert validity == dict.fromkeys(INDEXES, True)
    finally:
        await db.dispose()


async def test_0011_goes_down_and_up_again(fresh_url: str) -> None:
    await migrate(fresh_url, "head")
    await migrate(fresh_url, "0010", down=True)
    assert not set(INDEXES) & await index_names(fresh_url)

    await migrate(fresh_url, "head")

    assert set(INDEXES) <= await index_names(fresh_url)


async def index_names(url: str) -> set[str]:
    db = Database(url)
    try:
        async with db.read() as conn:
            return set((await conn.execute(sa.text(_INDEX_NAMES[db.dialect_name]))).scalars())
    finally:
        await db.dispose()
