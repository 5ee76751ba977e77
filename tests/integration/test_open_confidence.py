"""Read confidence where only the database can judge it: the time since the message was
sent, and whether the account counts machine opens as reads. On SQLite and PostgreSQL,
which must agree to the letter (events' details included)."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from common.domain import DeliveryState, ReadConfidence
from db.deliveries import transition
from db.engine import Database
from db.opens import Open, record_opens
from db.tables import accounts
from tests.support.builders import T0, Scenario, commented_task, delivery, events_of, message_of

HUMAN, PROXY, MACHINE = ReadConfidence.HUMAN, ReadConfidence.PROXY, ReadConfidence.MACHINE


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def person(pixel_id: str, seconds: float, *, window: float | None = 2.0) -> Open:
    """A mail client's load: HUMAN unless it came within `window` s of sending."""
    return Open(
        pixel_id,
        at(seconds),
        HUMAN,
        "unknown",
        "unrecognised user agent (counted as a read)",
        window,
        "unknown",
    )


def scanner(pixel_id: str, seconds: float) -> Open:
    return Open(pixel_id, at(seconds), MACHINE, "mimecast", "Mimecast scanner (network)")


def gmail(pixel_id: str, seconds: float) -> Open:
    return Open(pixel_id, at(seconds), PROXY, "google", "Gmail image proxy (user agent)")


async def sent_delivery(db: Database, *, sent_at: dt.datetime | None = T0) -> tuple[Scenario, str]:
    """One delivery, SENT at `sent_at` (None: still QUEUED), and its pixel."""
    scenario = await commented_task(db, ["ann@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    if sent_at is not None:
        async with db.write() as conn:
            await transition(conn, [delivery_id], DeliveryState.SENT, {"sent_at": sent_at})
    return scenario, (await message_of(db, delivery_id)).pixel_id


async def record(db: Database, *opens: Open) -> None:
    async with db.write() as conn:
        await record_opens(conn, opens)


async def opened_details(db: Database, delivery_id: uuid.UUID) -> list[str | None]:
    return [e.detail for e in await events_of(db, delivery_id) if e.type == "opened"]


async def test_given_a_scanner_open_when_recorded_then_it_is_an_event_but_not_a_read(
    db: Database,
) -> None:
    # Given a sent delivery
    scenario, pixel_id = await sent_delivery(db)
    (delivery_id,) = scenario.notified.delivery_ids

    # When a scanner loads its pixel
    await record(db, scanner(pixel_id, 60))

    # Then it stays SENT, with no open counted, but the open is in its history
    row = await delivery(db, delivery_id)
    assert (row.state, row.open_count, row.read_at) == ("SENT", 0, None)
    assert row.read_confidence == "MACHINE"
    assert await opened_details(db, delivery_id) == [
        "MACHINE: Mimecast scanner (network); network mimecast; not counted as a read"
    ]


async def test_given_an_account_that_counts_machine_opens_when_a_scanner_opens_then_it_is_read(
    db: Database,
) -> None:
    # Given an account that chose to count machine opens
    scenario, pixel_id = await sent_delivery(db)
    (delivery_id,) = scenario.notified.delivery_ids
    async with db.write() as conn:
        await conn.execute(
            accounts.update()
            .where(accounts.c.id == scenario.account.account_id)
            .values(count_machine_opens=True)
        )

    # When a scanner loads the pixel
    await record(db, scanner(pixel_id, 60))

    # Then the delivery is READ, still marked as a machine's
    row = await delivery(db, delivery_id)
    assert (row.state, row.open_count, row.read_at) == ("READ", 1, at(60))
    assert row.read_confidence == "MACHINE"
    assert await opened_details(db, delivery_id) == [
        "MACHINE: Mimecast scanner (network); network mimecast"
    ]


async def test_given_opens_inside_and_past_the_window_when_recorded_then_only_the_late_one_reads(
    db: Database,
) -> None:
    # Given a delivery sent at T0
    scenario, pixel_id = await sent_delivery(db)
    (delivery_id,) = scenario.notified.delivery_ids

    # When a browser-looking client loads the pixel 1 s after sending, then at 2 s
    # (the window's edge), then at 45 s
    await record(db, person(pixel_id, 1), person(pixel_id, 2))
    assert (await delivery(db, delivery_id)).state == "SENT"
    await record(db, person(pixel_id, 45))

    # Then the first two are machine opens, the third a read at its own time
    row = await delivery(db, delivery_id)
    assert (row.state, row.open_count, row.read_at) == ("READ", 1, at(45))
    assert row.read_confidence == "HUMAN"
    assert await opened_details(db, delivery_id) == [
        "MACHINE: opened 1 s after sending; network unknown; not counted as a read",
        "MACHINE: opened 2 s after sending; network unknown; not counted as a read",
        "HUMAN: unrecognised user agent (counted as a read); network unknown",
    ]


async def test_given_fast_opens_a_fraction_of_a_second_apart_when_recorded_then_each_names_its_age_in_tenths(  # noqa: E501
    db: Database,
) -> None:
    # Given a delivery sent at T0
    scenario, pixel_id = await sent_delivery(db)
    (delivery_id,) = scenario.notified.delivery_ids

    # When the pixel is loaded 0.35 s, 1.25 s and 1.96 s after sending
    await record(db, person(pixel_id, 0.35), person(pixel_id, 1.25), person(pixel_id, 1.96))

    # Then each open gives its age to the tenth, halves rounded up, on either database
    assert await opened_details(db, delivery_id) == [
        f"MACHINE: opened {age} s after sending; network unknown; not counted as a read"
        for age in ("0.4", "1.3", "2")
    ]
    # And each keeps its own time to the microsecond
    opened = [e.at for e in await events_of(db, delivery_id) if e.type == "opened"]
    assert opened == [at(0.35), at(1.25), at(1.96)]


async def test_given_an_open_before_the_send_was_recorded_when_timed_then_it_is_a_machine(
    db: Database,
) -> None:
    # Given a delivery whose send is not recorded yet (the fetch came during delivery)
    scenario, pixel_id = await sent_delivery(db, sent_at=None)
    (delivery_id,) = scenario.notified.delivery_ids

    # When a client loads the pixel
    await record(db, person(pixel_id, 100))

    # Then it is as fast as an open gets: a machine's, and the delivery stays QUEUED
    row = await delivery(db, delivery_id)
    assert (row.state, row.read_confidence) == ("QUEUED", "MACHINE")
    assert await opened_details(db, delivery_id) == [
        "MACHINE: opened 0 s after sending; network unknown; not counted as a read"
    ]


async def test_a_proxy_open_reads_however_soon_it_comes(db: Database) -> None:
    scenario, pixel_id = await sent_delivery(db)
    (delivery_id,) = scenario.notified.delivery_ids

    await record(db, gmail(pixel_id, 0.5))

    row = await delivery(db, delivery_id)
    assert (row.state, row.read_at, row.read_confidence) == ("READ", at(0.5), "PROXY")


async def test_the_delivery_keeps_the_strongest_confidence_seen(db: Database) -> None:
    # Given a delivery read by a person through Gmail's proxy
    scenario, pixel_id = await sent_delivery(db)
    (delivery_id,) = scenario.notified.delivery_ids
    await record(db, gmail(pixel_id, 30))
    assert (await delivery(db, delivery_id)).read_confidence == "PROXY"

    # When a scanner loads it later, then a mail client, then a scanner again
    await record(db, scanner(pixel_id, 40))
    assert (await delivery(db, delivery_id)).read_confidence == "PROXY"
    await record(db, person(pixel_id, 50), scanner(pixel_id, 60))

    # Then it says HUMAN, and kept the first read's time; two opens counted
    row = await delivery(db, delivery_id)
    assert (row.state, row.read_at, row.open_count) == ("READ", at(30), 2)
    assert row.read_confidence == "HUMAN"


async def test_a_timed_open_is_judged_against_each_deliverys_own_send_time(db: Database) -> None:
    # Given one email to two addressees, sent to them 10 s apart (a retry)
    scenario = await commented_task(
        db, ["a@example.test", "b@example.test"], show_all_recipients=True
    )
    first, second = scenario.notified.delivery_ids
    pixel_id = (await message_of(db, first)).pixel_id
    async with db.write() as conn:
        await transition(conn, [first], DeliveryState.SENT, {"sent_at": at(0)})
        await transition(conn, [second], DeliveryState.SENT, {"sent_at": at(10)})

    # When the shared pixel is loaded at 11 s
    await record(db, person(pixel_id, 11))

    # Then it came late for the first and too soon for the second
    assert (await delivery(db, first)).state == "READ"
    assert (await delivery(db, second)).state == "SENT"
    assert await opened_details(db, second) == [
        "MACHINE: opened 1 s after sending; network unknown; not counted as a read;"
        " opened by one of 2 recipients"
    ]


async def test_state_and_counts_are_unchanged_by_an_unknown_pixel(db: Database) -> None:
    scenario, pixel_id = await sent_delivery(db)
    (delivery_id,) = scenario.notified.delivery_ids

    async with db.write() as conn:
        recorded = await record_opens(conn, [person("0" * 32, 60), scanner(pixel_id, 61)])

    assert recorded.confidences == {"MACHINE": 1}
    assert [change.delivery_id for change in recorded.changes] == [delivery_id]
    async with db.read() as conn:
        events = (
            await conn.execute(
                sa.text("SELECT count(*) FROM delivery_events WHERE type = 'opened'")
            )
        ).scalar_one()
    assert events == 1
