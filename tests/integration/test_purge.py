"""The purge deletes old notifications with everything hanging off them, events
included (they have no foreign key to cascade along, ADR 0014), and leaves newer ones
alone. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import sqlalchemy as sa

from db.deliveries import add_event
from db.engine import Database
from db.purge import purge
from db.tables import deliveries, delivery_events, messages, send_jobs
from tests.support.builders import T0, commented_task, count_rows, events_of
from tests.support.waiting import eventually, sessions_waiting_on_a_lock

OLD = T0 - dt.timedelta(days=400)
CUTOFF = T0 - dt.timedelta(days=1)


async def orphan_events(db: Database) -> int:
    """Events whose delivery no longer exists."""
    async with db.read() as conn:
        return int(
            (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(delivery_events)
                    .where(~sa.exists().where(deliveries.c.id == delivery_events.c.delivery_id))
                )
            ).scalar_one()
        )


async def test_given_an_old_and_a_new_comment_with_events_when_purged_then_only_the_old_ones_rows_and_events_are_gone(  # noqa: E501
    db: Database,
) -> None:
    # given: an old and a new comment, each emailed to two people, with an event each
    old = await commented_task(db, ["ann@example.test", "bob@example.test"], now=OLD)
    new = await commented_task(db, ["cid@example.test", "dan@example.test"], now=T0)
    async with db.write() as conn:
        await add_event(conn, old.notified.delivery_ids, "opened", OLD)
        await add_event(conn, new.notified.delivery_ids, "opened", T0)
    new_events = {d: await events_of(db, d) for d in new.notified.delivery_ids}

    # when
    deleted = await purge(db, older_than=CUTOFF)

    # then: the old notification went with its messages, deliveries, jobs and events
    assert deleted == 1
    for delivery_id in old.notified.delivery_ids:
        assert await events_of(db, delivery_id) == []
    assert await orphan_events(db) == 0
    assert await count_rows(db, deliveries) == 2
    assert await count_rows(db, messages) == 2
    assert await count_rows(db, send_jobs) == 2
    # and the new one kept every event it had
    assert {d: await events_of(db, d) for d in new.notified.delivery_ids} == new_events
    assert all(len(events) == 2 for events in new_events.values())


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_given_a_writer_holding_a_delivery_with_a_new_event_when_the_purge_deletes_it_then_the_event_goes_too(  # noqa: E501
    db: Database,
) -> None:
    # PostgreSQL only: SQLite runs one write transaction at a time, so the purge cannot
    # interleave with a writer there.
    # given: an old delivery, and a transaction that locked it and wrote an event for it
    # as a pixel batch does, not yet committed
    old = await commented_task(db, ["ann@example.test"], now=OLD)
    (delivery_id,) = old.notified.delivery_ids

    async with db.write() as writer:
        await writer.execute(
            deliveries.update()
            .where(deliveries.c.id == delivery_id)
            .values(open_count=deliveries.c.open_count + 1)
        )
        await add_event(writer, [delivery_id], "opened", T0)

        # when: the purge starts meanwhile, and the writer commits once it waits
        purging = asyncio.create_task(purge(db, older_than=CUTOFF))
        await eventually(lambda: sessions_waiting_on_a_lock(db), timeout=10)
    deleted = await purging

    # then: the event committed under the purge's feet went with its delivery
    assert deleted == 1
    assert await events_of(db, delivery_id) == []
    assert await orphan_events(db) == 0
