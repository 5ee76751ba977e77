"""The pixel's group commit: concurrent opens share transactions, a hit is answered
before its commit while few opens are uncommitted and waits for it past that, and the
outcome is the same as recording them one by one. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event

from broadcast import create_broadcast
from common.domain import DeliveryState
from db.deliveries import transition
from db.engine import Database
from db.open_writers import BatchWriter, writer_for
from db.opens import Open, Recorded, record_opens
from pixel.recorder import CROWD, OpenRecorder
from tests.support.builders import T0, commented_task, delivery, events_of, message_of


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def hit(pixel_id: str, seconds: float) -> Open:
    """A load of the pixel at T0 + seconds, by a person's mail client."""
    return Open(pixel_id, at(seconds))


async def one_delivery(db: Database) -> tuple[uuid.UUID, str]:
    """A comment emailed to one contact: its delivery, and the pixel of its email."""
    scenario = await commented_task(db, ["ann@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    pixel_id = (await message_of(db, delivery_id)).pixel_id
    assert pixel_id is not None
    return delivery_id, pixel_id


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


class GatedWriter:
    """The recorder's writer, holding each batch until `gate` is set; `entered` is set
    once a batch is held."""

    def __init__(self, inner: BatchWriter, gate: asyncio.Event, entered: asyncio.Event) -> None:
        self.inner = inner
        self.gate = gate
        self.entered = entered

    async def write(self, opens: Sequence[Open]) -> Recorded:
        self.entered.set()
        await self.gate.wait()
        return await self.inner.write(opens)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_given_a_commit_in_progress_when_a_hit_is_recorded_then_it_returns_at_once_and_is_committed_after(  # noqa: E501
    db: Database,
) -> None:
    # Given a delivery, and a recorder whose commits are held
    delivery_id, pixel_id = await one_delivery(db)
    gate, entered = asyncio.Event(), asyncio.Event()
    gated = recorder_for(db, writers=lambda: GatedWriter(writer_for(db), gate, entered))
    async with gated as recorder, asyncio.timeout(30):
        # When a hit is recorded
        await recorder.record(hit(pixel_id, 1))

        # Then it returned (the pixel is answered) before its open was committed
        await entered.wait()
        assert recorder.uncommitted == 1
        assert (await delivery(db, delivery_id)).open_count == 0

        # And once the commit goes through, the open is there
        gate.set()
        await recorder.settle()
        assert recorder.uncommitted == 0
        assert (await delivery(db, delivery_id)).open_count == 1


def commit_seconds() -> tuple[float, float]:
    """How many pixel commits `beacon_pixel_commit_seconds` counted, and their total time."""
    count = REGISTRY.get_sample_value("beacon_pixel_commit_seconds_count") or 0.0
    return count, REGISTRY.get_sample_value("beacon_pixel_commit_seconds_sum") or 0.0


async def test_given_a_batch_when_it_commits_then_the_time_it_took_is_in_the_metrics(
    db: Database,
) -> None:
    # Given a delivery, and a recorder whose commits are held
    _, pixel_id = await one_delivery(db)
    gate, entered = asyncio.Event(), asyncio.Event()
    gated = recorder_for(db, writers=lambda: GatedWriter(writer_for(db), gate, entered))
    before = commit_seconds()
    async with gated as recorder, asyncio.timeout(30):
        # When a batch is held for a tenth of a second (the duration measured, not a
        # wait for something), then let go
        await recorder.record(hit(pixel_id, 1))
        await entered.wait()
        await asyncio.sleep(0.1)
        assert commit_seconds() == before
        gate.set()
        await recorder.settle()

    # Then one commit was counted, with at least the time it was held
    count, total = commit_seconds()
    assert count == before[0] + 1
    assert total - before[1] >= 0.1


async def test_given_more_uncommitted_opens_than_answered_ahead_when_a_hit_comes_then_it_waits_for_its_commit(  # noqa: E501
    db: Database,
) -> None:
    # Given a recorder that answers at most two opens ahead of their commit, and whose
    # commits are held
    delivery_id, pixel_id = await one_delivery(db)
    gate, entered = asyncio.Event(), asyncio.Event()
    gated = recorder_for(
        db, answer_ahead=2, writers=lambda: GatedWriter(writer_for(db), gate, entered)
    )
    async with gated as recorder, asyncio.timeout(30):
        await recorder.record(hit(pixel_id, 1))
        await recorder.record(hit(pixel_id, 2))
        await entered.wait()

        # When two more hits come, and the client of the last one hangs up
        third = asyncio.create_task(recorder.record(hit(pixel_id, 3)))
        fourth = asyncio.create_task(recorder.record(hit(pixel_id, 4)))
        finished, _ = await asyncio.wait({third, fourth}, timeout=0.2)
        fourth.cancel()

        # Then neither is answered while the commits are held
        assert finished == set()
        assert recorder.uncommitted == 4

        # And once they go through, the third returns with its open committed, and the
        # open of the hit given up on is recorded all the same
        gate.set()
        await third
        assert (await delivery(db, delivery_id)).open_count >= 3
        await recorder.settle()
    assert (await delivery(db, delivery_id)).open_count == 4


class HoldingWriter:
    """The recorder's writer, holding each batch with an open of `pixel_id` until `gate`
    is set (`entered` is set once one is held); it records the pixels of every batch,
    and sets `passed` once a batch without that pixel is committed."""

    def __init__(self, inner: BatchWriter, pixel_id: str, events: dict[str, asyncio.Event],
                 batches: list[set[str]]) -> None:  # fmt: skip
        self.inner = inner
        self.pixel_id = pixel_id
        self.events = events
        self.batches = batches

    async def write(self, opens: Sequence[Open]) -> Recorded:
        pixels = {open_.pixel_id for open_ in opens}
        self.batches.append(pixels)
        if self.pixel_id in pixels:
            self.events["entered"].set()
            await self.events["gate"].wait()
            return await self.inner.write(opens)
        recorded = await self.inner.write(opens)
        self.events["passed"].set()
        return recorded

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_given_a_batch_committing_when_hits_of_its_pixel_and_another_crowd_in_then_a_second_batch_takes_only_the_other(  # noqa: E501
    db: Database,
) -> None:
    # PostgreSQL only: SQLite has one transaction in flight at a time.
    # Given two deliveries, each its own pixel, and a batch with an open of the first
    # committing (held)
    scenario = await commented_task(db, ["ann@example.test", "bob@example.test"])
    first, second = scenario.notified.delivery_ids
    held, other = [(await message_of(db, d)).pixel_id for d in (first, second)]
    assert held is not None
    assert other is not None
    events = {name: asyncio.Event() for name in ("entered", "gate", "passed")}
    batches: list[set[str]] = []
    holding = recorder_for(db, writers=lambda: HoldingWriter(writer_for(db), held, events, batches))
    async with holding as recorder, asyncio.timeout(30):
        await recorder.record(hit(held, 0))
        await events["entered"].wait()

        # When enough hits of both pixels wait to start a second transaction
        for n in range(1, CROWD + 1):
            await recorder.record(hit(held if n % 2 else other, n))

        # Then the second batch commits the other pixel's opens while the first is held,
        # and leaves the held pixel's for later: batches in flight together never share a
        # delivery, so they never wait for each other's row locks
        await events["passed"].wait()
        assert batches == [{held}, {other}]
        assert (await delivery(db, second)).open_count == CROWD // 2
        assert (await delivery(db, first)).open_count == 0

        # And once the first commits, the held pixel's opens follow, in the order they came
        events["gate"].set()
        await recorder.settle()
    assert (await delivery(db, first)).open_count == CROWD // 2 + 1
    opened = [e.at for e in await events_of(db, first) if e.type == "opened"]
    assert opened == [at(0)] + [at(n) for n in range(1, CROWD + 1, 2)]


async def test_given_a_trickle_of_hits_then_each_commits_at_once_and_under_load_a_batch_gathers_first(  # noqa: E501
    db: Database,
) -> None:
    # Given a delivery, and a recorder that gathers for half a second under load
    delivery_id, pixel_id = await one_delivery(db)
    batches: list[int] = []
    counting = recorder_for(
        db, commit_window=0.5, writers=lambda: CountingWriter(writer_for(db), batches)
    )
    loop = asyncio.get_running_loop()
    async with counting as recorder, asyncio.timeout(30):
        # When a single hit comes
        started = loop.time()
        await recorder.record(hit(pixel_id, 1))
        await recorder.settle()

        # Then it is committed without waiting for the window
        assert loop.time() - started < 0.5
        assert batches == [1]

        # When 40 hits come at once (a busy server), and then one more
        await asyncio.gather(*(recorder.record(hit(pixel_id, n)) for n in range(2, 42)))
        await recorder.settle()
        started = loop.time()
        await recorder.record(hit(pixel_id, 42))
        await recorder.settle()

        # Then the 40 share a batch, and the next one is gathered for the window first
        assert batches == [1, 40, 1]
        assert loop.time() - started >= 0.5
    assert (await delivery(db, delivery_id)).open_count == 42


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
    delivery_id, pixel_id = await one_delivery(db)
    flaky = recorder_for(db, retry_seconds=0.01, writers=lambda: FlakyWriter(writer_for(db)))
    async with flaky as recorder:
        FlakyWriter.down = True
        try:
            # When three hits arrive
            await asyncio.gather(*(recorder.record(hit(pixel_id, n)) for n in range(3)))
            await recorder.settle()

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
    # One statement on PostgreSQL; six on SQLite (no data-modifying CTEs there)
    assert counts[0] == counts[1] == (1 if db.dialect_name == "postgresql" else 6)


async def test_given_hits_arriving_just_as_a_commit_ends_when_recorded_then_none_is_left_waiting(
    db: Database,
) -> None:
    # Given a delivery and a recorder that answers each hit once its open is committed
    delivery_id, pixel_id = await one_delivery(db)
    async with recorder_for(db, answer_ahead=0) as recorder, asyncio.timeout(30):
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
