"""The send queue (db/outbox.py) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Row

from db import outbox
from db.engine import Database
from db.tables import send_jobs
from tests.support.builders import T0, commented_task

LEASE = dt.timedelta(seconds=30)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


async def make_jobs(db: Database, n: int) -> list[Row[Any]]:
    """n messages, each with a job due at T0, in job-id order."""
    await commented_task(db, [f"r{i}@example.test" for i in range(n)], now=T0)
    return await all_jobs(db)


async def all_jobs(db: Database) -> list[Row[Any]]:
    async with db.read() as conn:
        return list((await conn.execute(send_jobs.select().order_by(send_jobs.c.id))).all())


async def job(db: Database, job_id: int) -> Row[Any] | None:
    async with db.read() as conn:
        return (await conn.execute(send_jobs.select().where(send_jobs.c.id == job_id))).first()


async def set_run_at(db: Database, job_id: int, run_at: dt.datetime) -> None:
    async with db.write() as conn:
        await conn.execute(send_jobs.update().where(send_jobs.c.id == job_id).values(run_at=run_at))


async def claim(
    db: Database, owner: str, now: dt.datetime, limit: int = 10
) -> list[outbox.ClaimedJob]:
    async with db.write() as conn:
        return await outbox.claim(conn, owner=owner, now=now, lease=LEASE, limit=limit)


def ids(claimed: list[outbox.ClaimedJob]) -> set[int]:
    return {job.job_id for job in claimed}


async def test_claim_takes_due_jobs_only_and_leases_them_to_the_owner(db: Database) -> None:
    # given
    first, second, later = await make_jobs(db, 3)
    await set_run_at(db, later.id, at(60))

    # when
    claimed = await claim(db, "worker-a", now=at(0))

    # then
    assert ids(claimed) == {first.id, second.id}
    assert {job.message_id for job in claimed} == {first.message_id, second.message_id}
    for job_id in (first.id, second.id):
        row = await job(db, job_id)
        assert row is not None
        assert row.lease_owner == "worker-a"
        assert row.lease_until == at(0) + LEASE
    untouched = await job(db, later.id)
    assert untouched is not None
    assert untouched.lease_owner is None
    assert untouched.lease_until is None


async def test_claim_takes_a_job_once_it_falls_due(db: Database) -> None:
    # given
    (only,) = await make_jobs(db, 1)
    await set_run_at(db, only.id, at(60))

    # when
    too_early = await claim(db, "worker-a", now=at(59))
    on_time = await claim(db, "worker-a", now=at(60))

    # then
    assert too_early == []
    assert ids(on_time) == {only.id}


async def test_claim_takes_no_more_than_the_limit_oldest_first(db: Database) -> None:
    # given
    first, _, third = await make_jobs(db, 3)
    await set_run_at(db, first.id, at(-1))
    await set_run_at(db, third.id, at(-2))

    # when
    claimed = await claim(db, "worker-a", now=at(0), limit=2)

    # then
    assert ids(claimed) == {third.id, first.id}


async def test_a_leased_job_is_not_claimed_again_while_its_lease_lives(db: Database) -> None:
    # given
    (only,) = await make_jobs(db, 1)
    await claim(db, "worker-a", now=at(0))

    # when
    by_other = await claim(db, "worker-b", now=at(29))
    by_same = await claim(db, "worker-a", now=at(30))

    # then
    assert by_other == []
    assert by_same == []
    row = await job(db, only.id)
    assert row is not None
    assert row.lease_owner == "worker-a"
    assert row.lease_until == at(30)


async def test_a_job_whose_lease_expired_is_claimed_by_another_owner(db: Database) -> None:
    # given: worker-a claimed it and died
    (only,) = await make_jobs(db, 1)
    await claim(db, "worker-a", now=at(0))

    # when
    claimed = await claim(db, "worker-b", now=at(31))

    # then
    assert ids(claimed) == {only.id}
    row = await job(db, only.id)
    assert row is not None
    assert row.lease_owner == "worker-b"
    assert row.lease_until == at(31) + LEASE


async def test_finish_deletes_the_job(db: Database) -> None:
    # given
    first, second = await make_jobs(db, 2)
    await claim(db, "worker-a", now=at(0))

    # when
    async with db.write() as conn:
        finished = await outbox.finish(conn, first.id, "worker-a")

    # then
    assert finished
    assert [row.id for row in await all_jobs(db)] == [second.id]
    assert await claim(db, "worker-b", now=at(1000)) == [
        outbox.ClaimedJob(job_id=second.id, message_id=second.message_id)
    ]


async def test_reschedule_frees_the_job_and_makes_it_due_later(db: Database) -> None:
    # given
    (only,) = await make_jobs(db, 1)
    await claim(db, "worker-a", now=at(0))

    # when
    async with db.write() as conn:
        held = await outbox.reschedule(conn, only.id, "worker-a", at(100))

    # then
    assert held
    row = await job(db, only.id)
    assert row is not None
    assert (row.run_at, row.lease_owner, row.lease_until) == (at(100), None, None)
    assert await claim(db, "worker-b", now=at(99)) == []
    assert ids(await claim(db, "worker-b", now=at(100))) == {only.id}


async def test_a_worker_that_lost_its_lease_neither_finishes_nor_frees_the_job(
    db: Database,
) -> None:
    # given: worker-a's lease ran out mid-send and worker-b took the job
    (only,) = await make_jobs(db, 1)
    await claim(db, "worker-a", now=at(0))
    assert ids(await claim(db, "worker-b", now=at(31))) == {only.id}

    # when: worker-a comes back and records its outcome
    async with db.write() as conn:
        finished = await outbox.finish(conn, only.id, "worker-a")
        rescheduled = await outbox.reschedule(conn, only.id, "worker-a", at(40))

    # then: worker-b still holds the job
    assert (finished, rescheduled) == (False, False)
    row = await job(db, only.id)
    assert row is not None
    assert (row.lease_owner, row.lease_until) == ("worker-b", at(31) + LEASE)


async def test_release_hands_back_only_the_owners_jobs(db: Database) -> None:
    # given: worker-a holds the first job, worker-b the second
    first, second = await make_jobs(db, 2)
    assert ids(await claim(db, "worker-a", now=at(0), limit=1)) == {first.id}
    assert ids(await claim(db, "worker-b", now=at(0), limit=1)) == {second.id}

    # when: worker-a releases both ids
    async with db.write() as conn:
        await outbox.release(conn, "worker-a", [first.id, second.id])

    # then
    released = await job(db, first.id)
    kept = await job(db, second.id)
    assert released is not None
    assert kept is not None
    assert (released.lease_owner, released.lease_until) == (None, None)
    assert (kept.lease_owner, kept.lease_until) == ("worker-b", at(0) + LEASE)
    assert ids(await claim(db, "worker-c", now=at(1))) == {first.id}


async def test_enqueue_makes_an_existing_job_due_now(db: Database) -> None:
    # given: a job retrying later
    (only,) = await make_jobs(db, 1)
    await set_run_at(db, only.id, at(600))

    # when
    async with db.write() as conn:
        await outbox.enqueue(conn, only.message_id, at(5))

    # then: the same job, due now
    assert [(row.id, row.run_at) for row in await all_jobs(db)] == [(only.id, at(5))]
    assert ids(await claim(db, "worker-a", now=at(5))) == {only.id}


async def test_enqueue_keeps_a_live_lease(db: Database) -> None:
    # given: worker-a is sending the message
    (only,) = await make_jobs(db, 1)
    await claim(db, "worker-a", now=at(0))

    # when: a resend asks for the message again
    async with db.write() as conn:
        await outbox.enqueue(conn, only.message_id, at(1))

    # then: worker-a keeps it, nobody else takes it until the lease ends
    row = await job(db, only.id)
    assert row is not None
    assert (row.run_at, row.lease_owner, row.lease_until) == (at(1), "worker-a", at(30))
    assert await claim(db, "worker-b", now=at(2)) == []
    assert ids(await claim(db, "worker-b", now=at(31))) == {only.id}


async def test_enqueue_creates_a_job_when_the_message_has_none(db: Database) -> None:
    # given: the message was sent and its job finished
    (only,) = await make_jobs(db, 1)
    await claim(db, "worker-a", now=at(0))
    async with db.write() as conn:
        await outbox.finish(conn, only.id, "worker-a")

    # when
    async with db.write() as conn:
        await outbox.enqueue(conn, only.message_id, at(7))

    # then
    (new,) = await all_jobs(db)
    assert (new.message_id, new.run_at, new.lease_owner) == (only.message_id, at(7), None)


async def test_next_run_at_is_the_earliest_due_time(db: Database) -> None:
    # given
    first, second = await make_jobs(db, 2)
    await set_run_at(db, first.id, at(50))
    await set_run_at(db, second.id, at(20))

    # when
    async with db.read() as conn:
        earliest = await outbox.next_run_at(conn)

    # then
    assert earliest == at(20)


# SKIP LOCKED exists on PostgreSQL only; SQLite has a single writer.
postgres_only = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@postgres_only
async def test_a_claim_skips_jobs_locked_by_a_concurrent_claim_on_postgres(
    db: Database, database_url: str
) -> None:
    # given: two jobs, and a second process with its own connection pool
    first, second = await make_jobs(db, 2)
    other = Database(database_url)
    try:
        # when: worker-a claims one job and keeps its transaction open
        async with db.write() as held:
            mine = await outbox.claim(held, owner="worker-a", now=at(0), lease=LEASE, limit=1)
            # a claim that waited for the lock instead of skipping it would hang here
            async with asyncio.timeout(10), other.write() as conn:
                theirs = await outbox.claim(
                    conn, owner="worker-b", now=at(0), lease=LEASE, limit=10
                )

        # then: worker-b got the other job, never worker-a's
        assert ids(mine) == {first.id}
        assert ids(theirs) == {second.id}
        rows = {row.id: row.lease_owner for row in await all_jobs(db)}
        assert rows == {first.id: "worker-a", second.id: "worker-b"}
    finally:
        await other.dispose()


@postgres_only
async def test_concurrent_claims_never_return_the_same_job_on_postgres(
    db: Database, database_url: str
) -> None:
    # given: 40 due jobs and four worker processes
    jobs = await make_jobs(db, 40)
    workers = [Database(database_url) for _ in range(4)]
    try:

        async def drain(worker: Database, owner: str) -> list[int]:
            taken: list[int] = []
            while True:
                async with worker.write() as conn:
                    claimed = await outbox.claim(conn, owner=owner, now=at(0), lease=LEASE, limit=3)
                if not claimed:
                    return taken
                taken.extend(job.job_id for job in claimed)

        # when
        async with asyncio.timeout(30):
            results = await asyncio.gather(
                *(drain(worker, f"worker-{i}") for i, worker in enumerate(workers))
            )

        # then: every job exactly once
        taken = [job_id for result in results for job_id in result]
        assert sorted(taken) == sorted(row.id for row in jobs)
        owners = {row.id: row.lease_owner for row in await all_jobs(db)}
        for i, result in enumerate(results):
            assert all(owners[job_id] == f"worker-{i}" for job_id in result)
    finally:
        for worker in workers:
            await worker.dispose()


async def test_jobs_belong_to_messages_and_go_with_them(db: Database) -> None:
    # given
    (only,) = await make_jobs(db, 1)

    # when: a job for a message that does not exist
    with pytest.raises(sa.exc.IntegrityError):
        async with db.write() as conn:
            await outbox.enqueue(conn, uuid.uuid4(), at(0))

    # then: nothing changed
    assert [row.id for row in await all_jobs(db)] == [only.id]
