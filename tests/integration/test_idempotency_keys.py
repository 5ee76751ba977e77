"""Idempotency keys in the database, on SQLite and PostgreSQL: the primary key decides a
race (the second transaction waits for the first and then reads its result, or takes the
key when the first rolled back), an expired key is taken over, the purge deletes expired
keys only. The API's side is in tests/e2e/test_idempotency_keys.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from db import idempotency
from db.engine import Database
from db.purge import purge
from db.tables import idempotency_keys
from domain.idempotency import KEY_LIFETIME, input_hash
from tests.support.builders import create_account
from tests.support.waiting import eventually, sessions_waiting_on_a_lock

NOW = dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC)
HASH = input_hash("createTask", {"title": "T", "subscriberIds": []})


async def claim(
    db: Database, account_id: uuid.UUID, key: str, *, now: dt.datetime = NOW, result: uuid.UUID
) -> idempotency.UsedKey | None:
    """One request's transaction: take the key and record `result`, or read the first's."""
    async with db.write() as conn:
        used = await idempotency.claim(
            conn,
            account_id=account_id,
            key=key,
            mutation="createTask",
            input_hash=HASH,
            now=now,
            expired_before=now - KEY_LIFETIME,
        )
        if used is None:
            await idempotency.record_result(conn, account_id=account_id, key=key, result_id=result)
        return used


class Abandoned(Exception):
    """The first request failing after it took the key."""


@pytest.mark.parametrize("first_commits", [True, False])
async def test_a_second_request_with_the_key_waits_for_the_first_and_follows_its_outcome(
    db: Database, first_commits: bool
) -> None:
    account = await create_account(db)
    first_result, second_result = uuid.uuid4(), uuid.uuid4()

    # given: the first request has taken the key and not yet committed
    second: asyncio.Task[idempotency.UsedKey | None] | None = None
    try:
        async with db.write() as conn:
            taken = await idempotency.claim(
                conn,
                account_id=account.account_id,
                key="k",
                mutation="createTask",
                input_hash=HASH,
                now=NOW,
                expired_before=NOW - KEY_LIFETIME,
            )
            assert taken is None
            # when: a second request with the key starts meanwhile
            second = asyncio.create_task(claim(db, account.account_id, "k", result=second_result))
            if db.dialect_name == "postgresql":
                # The second's INSERT waits on the key the first holds, in the database.
                await eventually(lambda: sessions_waiting_on_a_lock(db), timeout=10)
                assert not second.done()
            # (On SQLite the second cannot begin before this commits: Database.write
            # holds the one writer's lock, so there is nothing to check meanwhile.)
            await idempotency.record_result(
                conn, account_id=account.account_id, key="k", result_id=first_result
            )
            if not first_commits:
                raise Abandoned
    except Abandoned:
        pass
    assert second is not None
    used = await second

    # then: it answers the first's result, or (the first rolled back) does the work itself
    if first_commits:
        assert used is not None
        assert (used.mutation, used.input_hash, used.result_id) == (
            "createTask",
            HASH,
            first_result,
        )
    else:
        assert used is None
    async with db.read() as conn:
        stored = (await conn.execute(sa.select(idempotency_keys.c.result_id))).scalars().all()
    assert stored == [first_result if first_commits else second_result]


async def test_an_expired_key_is_taken_over_and_a_live_one_is_not(db: Database) -> None:
    account = await create_account(db)
    old, new = uuid.uuid4(), uuid.uuid4()
    assert await claim(db, account.account_id, "k", now=NOW - KEY_LIFETIME, result=old) is None

    # a moment before it expires, the key still answers its first result
    still = await claim(db, account.account_id, "k", now=NOW - dt.timedelta(seconds=1), result=new)
    assert still is not None
    assert still.result_id == old

    # once expired, the next use takes it afresh
    assert (
        await claim(db, account.account_id, "k", now=NOW + dt.timedelta(seconds=1), result=new)
        is None
    )
    async with db.read() as conn:
        row = (await conn.execute(sa.select(idempotency_keys))).one()
    assert (row.result_id, row.created_at) == (new, NOW + dt.timedelta(seconds=1))


async def test_the_purge_deletes_expired_keys_in_batches_and_keeps_live_ones(
    db: Database,
) -> None:
    account = await create_account(db)
    for number in range(5):
        await claim(
            db, account.account_id, f"old-{number}", now=NOW - KEY_LIFETIME, result=uuid.uuid4()
        )
    await claim(db, account.account_id, "live", now=NOW, result=uuid.uuid4())

    await purge(
        db,
        older_than=NOW - dt.timedelta(days=400),
        keys_used_before=NOW - KEY_LIFETIME + dt.timedelta(seconds=1),
        batch_size=2,
    )

    async with db.read() as conn:
        keys = (await conn.execute(sa.select(idempotency_keys.c.key))).scalars().all()
    assert keys == ["live"]
