"""The pixel's group commit: concurrent opens share transactions, each open is durable
before its pixel is answered, and the outcome is the same as recording them one by one.
On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import event

from common.broadcast import create_broadcast
from common.domain import DeliveryState
from db.deliveries import transition
from db.engine import Database
from db.opens import Open, Recorded, record_opens
from pixel.recorder import OpenRecorder
from pixel.writers import BatchWriter, writer_for
from tests.support.builders import T0, commented_task, delivery, events_of, message_of


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def hit(pixel_id: str, seconds: float) -> Open:
    """A load of the pixel at T0 + seconds, by a person's mail client."""
    return Open(pixel_id, at(seconds))


class CountingWriter:
    """The recorder's writer, counting the batches (one transaction each) it writes."""

    def __init__(self, inner: BatchWriter, batches: list[int]) -> None:
        self.inner = inner
        self.batches = batches

    async def write(self, opens: Sequence[Open]) -> Recorded:
        self.batches.append(len(opens))
        return await self.inner.write(opens)

    async def aclose(self) -> None:
        await self.inner.aclose()


@contextlib.asynccontextmanager
async def recorder_for(db: Database, **options: Any) -> AsyncIterator[OpenRecorder]:
    broadcast = create_broadcast("memory://")
    await broadcast.connect()
    recorder = OpenRecorder(db, broadcast, capacity=100, **options)
    try:
        yield recorder
    finally:
        await recorder.aclose()
        await broadcast.disconnect()


async def test_given_many_concurrent_hits_when_recorded_then_they_share_a_few_commits_and_each_is_counted(  # noqa: E501
    db: Database,
) -> None:
    # Given four deliveries, each its own message and pixel
    scenario = await commented_task(db, [f"p{n}@example.test" for n in range(4)])
    pixels = [(await message_of(db, d)).pixel_id for d in scenario.notified.delivery_ids]

    # When 40 hits arrive at once, ten per pixel
    batches: list[int] = []
    counting = recorder_for(db, writers=lambda: CountingWriter(writer_for(db), batches))
    async with counting as recorder:
        await asyncio.gather(*(recorder.record(hit(pixels[n % 4], n)) for n in range(40)))

    # Then a handful of transactions took them all
    assert 1 <= len(batches) <= 4
    assert sum(batches) == 40
    # And every open counts: READ at the first hit, ten opens and ten events each
    for number, delivery_id in enumerate(scenario.notified.delivery_ids):
        row = await delivery(db, delivery_id)
        assert (row.state, row.read_at, row.open_count) == ("READ", at(number), 10)
        opened = [e.at for e in await events_of(db, delivery_id) if e.type == "opened"]
        assert opened == [at(number + 4 * k) for k in range(10)]


async def test_given_a_hit_when_record_returns_then_the_open_is_already_committed(
    db: Database,
) -> None:
    # Given a delivery and a recorder
    scenario = await commented_task(db, ["ann@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    pixel_id = (await message_of(db, delivery_id)).pixel_id
    async with recorder_for(db) as recorder:
        # When one hit is recorded
        await recorder.record(hit(pixel_id, 1))

        # Then, as record() returns, another connection already sees it
        assert (await delivery(db, delivery_id)).open_count == 1


async def test_given_a_shared_message_with_a_failed_recipient_when_opened_in_a_batch_then_only_the_others_read_it(  # noqa: E501
    db: Database,
) -> None:
    # Given one email to three addressees, one of whom bounced
    scenario = await commented_task(
        db, ["a@example.test", "b@example.test", "c@example.test"], show_all_recipients=True
    )
    a, b, c = scenario.notified.delivery_ids
    pixel_id = (await message_of(db, a)).pixel_id
    async with db.write() as conn:
        await transition(conn, [b], DeliveryState.FAILED, {"failed_at": at(0)})

    # When two opens and an unknown pixel are recorded together
    async with db.write() as conn:
        await record_opens(conn, [hit(pixel_id, 5), hit("0" * 32, 6), hit(pixel_id, 7)])

    # Then the two others are READ with two opens, and the failed one untouched
    for delivery_id in (a, c):
        row = await delivery(db, delivery_id)
        assert (row.state, row.read_at, row.open_count) == ("READ", at(5), 2)
        details = [e.detail for e in await events_of(db, delivery_id) if e.type == "opened"]
        assert (
            details
            == ["HUMAN: counted as a read; network unknown; opened by one of 2 recipients"] * 2
        )
    failed = await delivery(db, b)
    assert (failed.state, failed.open_count) == ("FAILED", 0)


class FlakyWriter:
    """The recorder's writer, except that it fails while `down` is set."""

    down = False

    def __init__(self, inner: BatchWriter) -> None:
        self.inner = inner

    async def write(self, opens: Sequence[Open]) -> Recorded:
        if FlakyWriter.down:
            raise OSError("connection refused")
        return await self.inner.write(opens)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_given_the_database_is_down_when_hits_arrive_then_they_are_buffered_and_written_once_it_is_back(  # noqa: E501
    db: Database,
) -> None:
    # Given a delivery, and a database that goes away
    scenario = await commented_task(db, ["ann@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    pixel_id = (await message_of(db, delivery_id)).pixel_id
    flaky = recorder_for(db, retry_seconds=0.01, writers=lambda: FlakyWriter(writer_for(db)))
    async with flaky as recorder:
        FlakyWriter.down = True
        try:
            # When three hits arrive
            await asyncio.gather(*(recorder.record(hit(pixel_id, n)) for n in range(3)))

            # Then they wait in the buffer
            assert recorder.buffered == 3
            assert (await delivery(db, delivery_id)).open_count == 0
        finally:
            # And are written, with their own times, once the database is back
            FlakyWriter.down = False
        await recorder.drain()
        assert recorder.buffered == 0
    row = await delivery(db, delivery_id)
    assert (row.state, row.read_at, row.open_count) == ("READ", at(0), 3)


async def test_a_batch_takes_the_same_number_of_statements_for_one_open_or_many(
    db: Database,
) -> None:
    scenario = await commented_task(db, [f"p{n}@example.test" for n in range(6)])
    pixels = [(await message_of(db, d)).pixel_id for d in scenario.notified.delivery_ids]
    counts = []
    for opens in ([hit(pixels[0], 1)], [hit(pixel, 2) for pixel in pixels[1:] * 3]):
        statements: list[str] = []

        def record(*args: Any, into: list[str] = statements) -> None:
            into.append(str(args[2]))

        event.listen(db.engine.sync_engine, "before_cursor_execute", record)
        try:
            async with db.write() as conn:
                await record_opens(conn, opens)
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", record)
        counts.append(len([s for s in statements if not s.strip().upper().startswith("BEGIN")]))
    # One statement on PostgreSQL; three on SQLite (no data-modifying CTEs there)
    assert counts[0] == counts[1] == (1 if db.dialect_name == "postgresql" else 3)


async def test_given_hits_arriving_just_as_a_commit_ends_when_recorded_then_none_is_left_waiting(
    db: Database,
) -> None:
    # Given a delivery and a recorder
    scenario = await commented_task(db, ["ann@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    pixel_id = (await message_of(db, delivery_id)).pixel_id
    async with recorder_for(db) as recorder, asyncio.timeout(30):
        # When each hit comes as soon as the one before is recorded, so just as its
        # commit ends (one such hit once found the finished committer still counted as
        # running, and waited forever)
        for n in range(20):
            await recorder.record(hit(pixel_id, n))
        # and then some in pairs, one loop turn apart
        for n in range(20, 40, 2):
            await asyncio.gather(
                recorder.record(hit(pixel_id, n)), _later(recorder, pixel_id, n + 1)
            )

    # Then every one was recorded
    assert (await delivery(db, delivery_id)).open_count == 40


async def _later(recorder: OpenRecorder, pixel_id: str, n: int) -> None:
    await asyncio.sleep(0)
    await recorder.record(hit(pixel_id, n))
