"""The delivery log's keyset pages and batches, and the delivery rates' buckets, on
SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa

from common.cursors import encode_cursor
from common.domain import Channel, DeliveryState, ReadConfidence
from db import delivery_log as db_log
from db import stats as db_stats
from db.engine import Database
from db.tables import deliveries
from tests.support.builders import T0, add_comment, add_people, create_account, create_task

HOUR = dt.timedelta(hours=1)
LONG_AGO = T0 - dt.timedelta(days=365)


async def _set(db: Database, delivery_id: uuid.UUID, **values: Any) -> None:
    async with db.write() as conn:
        await conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(values))


async def _log(
    db: Database, account_id: uuid.UUID, wanted: db_log.DeliveryFilter, **kw: Any
) -> Any:
    async with db.read() as conn:
        return await db_log.page(conn, account_id, wanted, **{"cutoff": LONG_AGO, **kw})


async def _seeded(db: Database) -> tuple[Any, list[uuid.UUID], list[uuid.UUID], list[Any]]:
    """Two tasks; six comments an hour apart, each notifying two people: twelve
    deliveries. Returns the account, the task ids, the comment deliveries newest first
    (a pair queued at the same instant is ordered by id, descending) and the people."""
    account = await create_account(db)
    people = await add_people(db, account.account_id, ["ann@acme.test", "bob@acme.test"])
    ids = [p.id for p in people]
    tasks = [
        await create_task(db, account.account_id, subscriber_ids=ids, title=f"T{i}")
        for i in range(2)
    ]
    newest_first: list[uuid.UUID] = []
    for i in range(6):
        notified = await add_comment(
            db,
            account.account_id,
            tasks[i % 2],
            author_id=account.owner_id,
            recipients=people,
            now=T0 + i * HOUR,
        )
        newest_first = sorted(notified.delivery_ids, reverse=True) + newest_first
    return account, tasks, newest_first, people


async def test_pages_walk_every_delivery_newest_first_without_gaps_or_repeats(
    db: Database,
) -> None:
    # given
    account, _, newest_first, _ = await _seeded(db)

    # when: pages of 5
    seen: list[uuid.UUID] = []
    after = None
    pages = 0
    while True:
        page = await _log(db, account.account_id, db_log.DeliveryFilter(), first=5, after=after)
        seen += [row.id for row in page.rows]
        pages += 1
        if not page.has_next:
            break
        after = encode_cursor(page.rows[-1].queued_at, page.rows[-1].id)

    # then
    assert seen == newest_first
    assert pages == 3


async def test_filters_narrow_the_log_and_the_history_window_hides_older_deliveries(
    db: Database,
) -> None:
    # given: the newest delivery failed, the one before it was read by a person
    account, tasks, newest_first, _ = await _seeded(db)
    await _set(db, newest_first[0], state="FAILED", failed_at=T0 + 6 * HOUR)
    await _set(db, newest_first[1], state="READ", read_confidence="HUMAN", read_at=T0 + 6 * HOUR)
    found = await _log(db, account.account_id, db_log.DeliveryFilter(), first=50, after=None)
    by_id = {row.id: row for row in found.rows}

    async def ids(cutoff: dt.datetime = LONG_AGO, **filter_: Any) -> list[uuid.UUID]:
        page = await _log(
            db, account.account_id, db_log.DeliveryFilter(**filter_), first=50, after=None,
            cutoff=cutoff,
        )  # fmt: skip
        return [row.id for row in page.rows]

    # then
    assert await ids(state=DeliveryState.FAILED) == [newest_first[0]]
    assert await ids(read_confidence=ReadConfidence.HUMAN) == [newest_first[1]]
    assert await ids(channel=Channel.SMS) == []
    assert await ids(address="ann@acme.test") == [
        i for i in newest_first if by_id[i].address == "ann@acme.test"
    ]
    assert await ids(task_id=tasks[0]) == [i for i in newest_first if by_id[i].task_id == tasks[0]]
    # since inclusive, until exclusive: the comments at T0+2h and T0+3h
    assert await ids(since=T0 + 2 * HOUR, until=T0 + 4 * HOUR) == newest_first[4:8]
    # the plan's window: only notifications from T0+4h on
    assert await ids(cutoff=T0 + 4 * HOUR) == newest_first[:4]
    assert await ids(cutoff=T0 + 4 * HOUR, since=T0) == newest_first[:4]


async def test_another_accounts_deliveries_never_show(db: Database) -> None:
    # given
    await _seeded(db)
    other = await create_account(db, name="Other", owner_email="o@other.test")

    # when
    page = await _log(db, other.account_id, db_log.DeliveryFilter(), first=50, after=None)

    # then
    assert page.rows == []
    assert page.has_next is False


async def test_batches_read_everything_in_order_a_batch_at_a_time(db: Database) -> None:
    # given
    account, _, newest_first, _ = await _seeded(db)

    # when
    sizes: list[int] = []
    seen: list[uuid.UUID] = []
    async for rows in db_log.batches(
        db.read, account.account_id, db_log.DeliveryFilter(), cutoff=LONG_AGO, size=5
    ):
        sizes.append(len(rows))
        seen += [row.id for row in rows]

    # then
    assert seen == newest_first
    assert sizes == [5, 5, 2]


async def test_rates_count_each_outcome_in_its_own_utc_bucket(db: Database) -> None:
    # given: twelve deliveries queued hourly from T0 (12:00 UTC)
    account, _, newest_first, _ = await _seeded(db)
    oldest_first = newest_first[::-1]
    sent = T0 + 30 * dt.timedelta(minutes=1)  # 12:30
    # four sent at 12:30; of them one read by a person (HUMAN) and one through a proxy
    # at 14:10, one opened only by a machine (not counted as a read), one bounced at 15:00
    for delivery_id in oldest_first[:4]:
        await _set(db, delivery_id, state="SENT", sent_at=sent)
    read = T0 + 2 * HOUR + 10 * dt.timedelta(minutes=1)
    await _set(db, oldest_first[0], state="READ", read_at=read, read_confidence="HUMAN")
    await _set(db, oldest_first[1], state="READ", read_at=read, read_confidence="PROXY")
    await _set(db, oldest_first[2], read_confidence="MACHINE")
    await _set(db, oldest_first[3], state="FAILED", failed_at=T0 + 3 * HOUR)
    # one failed without being sent at 13:05; one read in a messenger (no confidence)
    await _set(db, oldest_first[4], state="FAILED", failed_at=T0 + HOUR + dt.timedelta(minutes=5))
    await _set(db, oldest_first[5], state="READ", sent_at=read, read_at=read)

    # when
    async with db.read() as conn:
        hourly = await db_stats.delivery_counts(
            conn,
            account.account_id,
            since=T0,
            until=T0 + 6 * HOUR,
            bucket=db_stats.Bucket.HOUR,
            cutoff=LONG_AGO,
        )
        daily = await db_stats.delivery_counts(
            conn,
            account.account_id,
            since=T0.replace(hour=0),
            until=T0.replace(hour=0) + 24 * HOUR,
            bucket=db_stats.Bucket.DAY,
            cutoff=LONG_AGO,
        )

    # then
    def table(counts: Any) -> set[tuple[dt.datetime, str, str, int]]:
        return {(c.start, c.channel, c.outcome.value, c.deliveries) for c in counts}

    assert table(hourly) == {
        (T0, "EMAIL", "sent", 4),
        (T0 + HOUR, "EMAIL", "failed", 1),
        (T0 + 2 * HOUR, "EMAIL", "sent", 1),
        (T0 + 2 * HOUR, "EMAIL", "read_by_people", 3),
        (T0, "EMAIL", "read_by_machines", 1),
        (T0 + 3 * HOUR, "EMAIL", "bounced", 1),
    }
    day = T0.replace(hour=0)
    assert table(daily) == {
        (day, "EMAIL", "sent", 5),
        (day, "EMAIL", "failed", 1),
        (day, "EMAIL", "read_by_people", 3),
        (day, "EMAIL", "read_by_machines", 1),
        (day, "EMAIL", "bounced", 1),
    }


async def test_the_log_index_exists_and_serves_the_page_on_postgresql(db: Database) -> None:
    # given
    account, _, _, _ = await _seeded(db)
    if db.dialect_name != "postgresql":
        return  # the plan below is PostgreSQL's; the index itself is checked by test_migrations

    # when: with sequential scans and sorts off, the planner shows which index it can use
    async with db.read() as conn:
        await conn.exec_driver_sql("SET enable_seqscan = off")
        # And sorts off: on a few rows (or stale statistics) a sort is cheaper, but the
        # question is whether an index serves the page in its order.
        await conn.exec_driver_sql("SET enable_sort = off")
        query = db_log._query(account.account_id, db_log.DeliveryFilter(), LONG_AGO, None, 51)
        compiled = query.compile(conn.sync_connection, compile_kwargs={"literal_binds": True})
        plan = "\n".join((await conn.execute(sa.text(f"EXPLAIN {compiled}"))).scalars())

    # then
    assert "ix_deliveries_account_id_queued_at" in plan, plan
