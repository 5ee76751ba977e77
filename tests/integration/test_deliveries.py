"""Notifications, deliveries and their state changes (db/notify.py, db/deliveries.py)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from common.domain import Channel, DeliveryState, NotificationKind, Plan
from common.events import DeliveryChanged
from db import deliveries as db_deliveries
from db.engine import Database
from db.opens import Open, record_opens
from db.tables import deliveries, delivery_events, messages, notifications, send_jobs
from domain.notifications import enqueue_notification
from tests.support.builders import (
    MESSAGE_ID_DOMAIN,
    T0,
    Scenario,
    account_row,
    add_people,
    commented_task,
    count_rows,
    create_account,
    create_task,
    deliveries_of,
    delivery,
    events_of,
    message_of,
)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


async def select_all(db: Database, table: sa.Table) -> list[Row[Any]]:
    async with db.read() as conn:
        return list((await conn.execute(table.select())).all())


async def move(
    db: Database, delivery_ids: list[uuid.UUID], state: DeliveryState, **values: Any
) -> list[uuid.UUID]:
    async with db.write() as conn:
        return await db_deliveries.transition(conn, delivery_ids, state, values)


async def open_pixel(db: Database, pixel_id: str, now: dt.datetime) -> list[DeliveryChanged]:
    """A person's open (read confidence has tests of its own)."""
    async with db.write() as conn:
        return (await record_opens(conn, [Open(pixel_id, now)])).changes


async def pixel_of(db: Database, delivery_id: uuid.UUID) -> str:
    pixel_id = (await message_of(db, delivery_id)).pixel_id
    assert isinstance(pixel_id, str)
    return pixel_id


# enqueue_notification


async def test_a_comment_notifies_each_email_recipient_with_its_own_message_and_job(
    db: Database,
) -> None:
    # given / when: three subscribers, one of them without an email address
    scenario = await commented_task(db, ["ann@example.test", None, "bob@example.test"])
    ann, nobody, bob = scenario.people

    # then: one notification about the comment
    (notification,) = await select_all(db, notifications)
    assert notification.account_id == scenario.account_id
    assert notification.task_id == scenario.task_id
    assert notification.comment_id == scenario.notified.comment_id
    assert notification.kind == NotificationKind.COMMENT_ADDED.value
    assert notification.created_at == T0

    # one queued delivery per email recipient, none for the person without email
    rows = await deliveries_of(db, scenario.notified.delivery_ids)
    assert [(row.recipient_id, row.address) for row in rows] == [
        (ann.id, "ann@example.test"),
        (bob.id, "bob@example.test"),
    ]
    assert await count_rows(db, deliveries) == 2
    for row in rows:
        assert row.notification_id == notification.id
        assert row.channel == "EMAIL"
        assert row.state == DeliveryState.QUEUED.value
        assert row.attempts == 0
        assert row.open_count == 0
        assert row.queued_at == T0
        assert (row.sent_at, row.failed_at, row.read_at, row.accepted_by) == (None,) * 4
        assert row.error_code is None

    # one message per delivery, with a stable Message-ID and its own pixel
    message_rows = {row.id: row for row in await select_all(db, messages)}
    assert set(message_rows) == {row.message_id for row in rows}
    for message in message_rows.values():
        assert message.notification_id == notification.id
        assert re.fullmatch(
            rf"<[0-9a-f]{{32}}@{re.escape(MESSAGE_ID_DOMAIN)}>", message.header_message_id
        )
        assert re.fullmatch(r"[0-9a-f]{32}", message.pixel_id)
    assert len({message.pixel_id for message in message_rows.values()}) == 2
    assert len({message.header_message_id for message in message_rows.values()}) == 2

    # one job per message, due at once
    jobs = await select_all(db, send_jobs)
    assert sorted((job.message_id, job.run_at) for job in jobs) == sorted(
        (message_id, T0) for message_id in message_rows
    )
    assert all(job.lease_owner is None for job in jobs)

    # a "queued" event each
    for row in rows:
        assert [(e.type, e.at, e.detail) for e in await events_of(db, row.id)] == [
            ("queued", T0, None)
        ]

    # and a change to publish for each delivery
    assert scenario.notified.changes == [
        DeliveryChanged(
            account_id=scenario.account_id,
            delivery_id=row.id,
            task_id=scenario.task_id,
            comment_id=scenario.notified.comment_id,
        )
        for row in rows
    ]
    assert nobody.email is None


async def test_a_task_creation_notification_has_no_comment(db: Database) -> None:
    # given
    account = await create_account(db)
    (ann,) = await add_people(db, account.account_id, ["ann@example.test"])
    task_id = await create_task(db, account.account_id, subscriber_ids=[ann.id])
    account_data = await account_row(db, account.account_id)

    # when
    async with db.write() as conn:
        changes = await enqueue_notification(
            conn,
            account=account_data,
            task_id=task_id,
            comment_id=None,
            kind=NotificationKind.TASK_CREATED,
            recipients=[ann],
            configured=frozenset(Channel),
            message_id_domain=MESSAGE_ID_DOMAIN,
            now=T0,
        )

    # then
    (notification,) = await select_all(db, notifications)
    assert (notification.task_id, notification.comment_id, notification.kind) == (
        task_id,
        None,
        NotificationKind.TASK_CREATED.value,
    )
    assert [(c.task_id, c.comment_id) for c in changes] == [(task_id, None)]
    assert (await delivery(db, changes[0].delivery_id)).address == "ann@example.test"


async def test_recipients_without_email_get_no_notification_at_all(db: Database) -> None:
    # given / when
    scenario = await commented_task(db, [None, None])

    # then
    assert scenario.notified.changes == []
    for table in (notifications, messages, deliveries, delivery_events, send_jobs):
        assert await count_rows(db, table) == 0, table.name


async def test_show_all_recipients_puts_every_email_delivery_on_one_message_with_one_pixel(
    db: Database,
) -> None:
    # given / when
    scenario = await commented_task(
        db,
        ["ann@example.test", "bob@example.test", None, "cy@example.test"],
        show_all_recipients=True,
    )

    # then
    rows = await deliveries_of(db, scenario.notified.delivery_ids)
    assert [row.address for row in rows] == [
        "ann@example.test",
        "bob@example.test",
        "cy@example.test",
    ]
    (message,) = await select_all(db, messages)
    assert {row.message_id for row in rows} == {message.id}
    assert message.pixel_id is not None
    (job,) = await select_all(db, send_jobs)
    assert job.message_id == message.id
    for row in rows:
        assert [e.type for e in await events_of(db, row.id)] == ["queued"]


async def test_a_free_account_gets_no_pixel(db: Database) -> None:
    # given / when
    scenario = await commented_task(db, ["ann@example.test"], plan=Plan.FREE)

    # then: the mail is still queued, without a pixel
    (row,) = await deliveries_of(db, scenario.notified.delivery_ids)
    assert row.state == DeliveryState.QUEUED.value
    assert (await message_of(db, row.id)).pixel_id is None
    assert await count_rows(db, send_jobs) == 1


async def test_open_tracking_off_gets_no_pixel(db: Database) -> None:
    # given / when
    scenario = await commented_task(
        db, ["ann@example.test", "bob@example.test"], plan=Plan.PREMIUM, open_tracking=False
    )

    # then
    for delivery_id in scenario.notified.delivery_ids:
        assert (await message_of(db, delivery_id)).pixel_id is None


async def test_premium_with_open_tracking_gets_a_pixel(db: Database) -> None:
    # given / when
    scenario = await commented_task(db, ["ann@example.test"], plan=Plan.PREMIUM)

    # then
    assert (await message_of(db, scenario.notified.delivery_ids[0])).pixel_id is not None


async def test_notification_rows_are_written_with_the_comment_or_not_at_all(db: Database) -> None:
    # given
    account = await create_account(db)
    (ann,) = await add_people(db, account.account_id, ["ann@example.test"])
    task_id = await create_task(db, account.account_id, subscriber_ids=[ann.id])
    account_data = await account_row(db, account.account_id)

    # when: the transaction fails after the notification was written
    try:
        async with db.write() as conn:
            await enqueue_notification(
                conn,
                account=account_data,
                task_id=task_id,
                comment_id=None,
                kind=NotificationKind.TASK_CREATED,
                recipients=[ann],
                configured=frozenset(Channel),
                message_id_domain=MESSAGE_ID_DOMAIN,
                now=T0,
            )
            raise RuntimeError("the request failed")
    except RuntimeError:
        pass

    # then
    for table in (notifications, messages, deliveries, delivery_events, send_jobs):
        assert await count_rows(db, table) == 0, table.name


# transition


async def test_transition_moves_a_queued_delivery_to_sent(db: Database) -> None:
    # given
    scenario = await commented_task(db, ["ann@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids

    # when
    moved = await move(db, [delivery_id], DeliveryState.SENT, sent_at=at(1), accepted_by="mx")

    # then
    assert moved == [delivery_id]
    row = await delivery(db, delivery_id)
    assert (row.state, row.sent_at, row.accepted_by) == ("SENT", at(1), "mx")


async def test_transition_never_moves_a_state_backwards_but_the_event_is_kept(
    db: Database,
) -> None:
    # given: a delivery that was read
    scenario = await commented_task(db, ["ann@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    assert await move(db, [delivery_id], DeliveryState.READ, read_at=at(5)) == [delivery_id]

    # when: a late "sent" report arrives
    async with db.write() as conn:
        moved = await db_deliveries.transition(
            conn, [delivery_id], DeliveryState.SENT, {"sent_at": at(9)}
        )
        await db_deliveries.add_event(conn, [delivery_id], "sent", at(9), "late report")

    # then: still READ, and the history has the late event
    assert moved == []
    row = await delivery(db, delivery_id)
    assert (row.state, row.read_at, row.sent_at) == ("READ", at(5), None)
    assert [(e.type, e.at, e.detail) for e in await events_of(db, delivery_id)] == [
        ("queued", T0, None),
        ("sent", at(9), "late report"),
    ]


async def test_transition_moves_only_the_deliveries_that_may_enter_the_state(
    db: Database,
) -> None:
    # given: one failed, one sent, one read
    scenario = await commented_task(db, ["a@example.test", "b@example.test", "c@example.test"])
    failed, sent, read = scenario.notified.delivery_ids
    await move(db, [failed], DeliveryState.FAILED)
    await move(db, [sent], DeliveryState.SENT)
    await move(db, [read], DeliveryState.READ)

    # when: all three are asked to go back to QUEUED (a resend)
    moved = await move(db, [failed, sent, read], DeliveryState.QUEUED, attempts=0)

    # then: only FAILED -> QUEUED is allowed
    assert moved == [failed]
    states = [row.state for row in await deliveries_of(db, [failed, sent, read])]
    assert states == ["QUEUED", "SENT", "READ"]


async def test_a_sent_delivery_may_still_fail_on_a_bounce(db: Database) -> None:
    # given
    scenario = await commented_task(db, ["ann@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    await move(db, [delivery_id], DeliveryState.SENT)

    # when
    moved = await move(db, [delivery_id], DeliveryState.FAILED, error_code="550")

    # then
    assert moved == [delivery_id]
    assert (await delivery(db, delivery_id)).state == "FAILED"


# record_opens, one at a time


async def test_an_open_before_the_send_was_recorded_makes_it_read_and_sent(
    db: Database,
) -> None:
    # given: still QUEUED
    scenario = await commented_task(db, ["ann@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids

    # when
    changes = await open_pixel(db, await pixel_of(db, delivery_id), at(10))

    # then
    row = await delivery(db, delivery_id)
    assert (row.state, row.read_at, row.sent_at, row.open_count) == ("READ", at(10), at(10), 1)
    assert [(e.type, e.at, e.detail) for e in await events_of(db, delivery_id)][-1] == (
        "opened",
        at(10),
        "HUMAN: counted as a read; network unknown",
    )
    assert changes == [
        DeliveryChanged(
            account_id=scenario.account_id,
            delivery_id=delivery_id,
            task_id=scenario.task_id,
            comment_id=scenario.notified.comment_id,
        )
    ]


async def test_an_open_of_a_sent_delivery_keeps_its_sent_time(db: Database) -> None:
    # given
    scenario = await commented_task(db, ["ann@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    await move(db, [delivery_id], DeliveryState.SENT, sent_at=at(1))

    # when
    await open_pixel(db, await pixel_of(db, delivery_id), at(10))

    # then
    row = await delivery(db, delivery_id)
    assert (row.state, row.sent_at, row.read_at, row.open_count) == ("READ", at(1), at(10), 1)


async def test_each_open_is_counted_and_the_first_read_time_is_kept(db: Database) -> None:
    # given
    scenario = await commented_task(db, ["ann@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    await move(db, [delivery_id], DeliveryState.SENT, sent_at=at(1))
    pixel_id = await pixel_of(db, delivery_id)

    # when
    await open_pixel(db, pixel_id, at(10))
    await open_pixel(db, pixel_id, at(20))
    await open_pixel(db, pixel_id, at(30))

    # then
    row = await delivery(db, delivery_id)
    assert (row.state, row.read_at, row.sent_at, row.open_count) == ("READ", at(10), at(1), 3)
    opened = [e.at for e in await events_of(db, delivery_id) if e.type == "opened"]
    assert opened == [at(10), at(20), at(30)]


async def test_an_unknown_pixel_id_changes_nothing(db: Database) -> None:
    # given
    scenario = await commented_task(db, ["ann@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    before = await delivery(db, delivery_id)

    # when
    changes = await open_pixel(db, "0" * 32, at(10))

    # then
    assert changes == []
    assert await delivery(db, delivery_id) == before
    assert await count_rows(db, delivery_events) == 1


async def test_an_open_of_a_shared_message_marks_every_delivery_read(db: Database) -> None:
    # given: one email to three addressees
    scenario: Scenario = await commented_task(
        db, ["a@example.test", "b@example.test", "c@example.test"], show_all_recipients=True
    )
    ids = scenario.notified.delivery_ids
    await move(db, ids[:2], DeliveryState.SENT, sent_at=at(1))  # the third is still queued

    # when
    changes = await open_pixel(db, await pixel_of(db, ids[0]), at(10))

    # then
    rows = await deliveries_of(db, ids)
    assert [(r.state, r.read_at, r.open_count) for r in rows] == [("READ", at(10), 1)] * 3
    assert [r.sent_at for r in rows] == [at(1), at(1), at(10)]
    for delivery_id in ids:
        detail = (await events_of(db, delivery_id))[-1].detail
        assert detail == "HUMAN: counted as a read; network unknown; opened by one of 3 recipients"
    # one change rings the account's bell: subscribers read what changed from the log
    assert [(c.account_id, c.task_id) for c in changes] == [(scenario.account_id, scenario.task_id)]
    assert changes[0].delivery_id in ids


async def test_an_open_of_one_message_leaves_the_other_messages_alone(db: Database) -> None:
    # given: separate messages
    scenario = await commented_task(db, ["a@example.test", "b@example.test"])
    opened, other = scenario.notified.delivery_ids

    # when
    await open_pixel(db, await pixel_of(db, opened), at(10))

    # then
    assert [r.state for r in await deliveries_of(db, [opened, other])] == ["READ", "QUEUED"]
    assert (await delivery(db, other)).open_count == 0
