"""A notification makes one delivery per recipient per channel they can be reached on."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from channels.base import ProviderReport, ReportStatus
from common.domain import Channel, DeliveryState, NotificationKind, PersonKind
from db import accounts as db_accounts
from db.deliveries import add_event, transition
from db.engine import Database
from db.tables import deliveries, messages, provider_reports
from domain.notifications import enqueue_notification
from inbound.reports import apply_reports
from tests.support.builders import (
    MESSAGE_ID_DOMAIN,
    T0,
    account_row,
    create_account,
    create_task,
    delivery,
    events_of,
)

EVERYTHING = frozenset(Channel)
NO_PROVIDERS = frozenset({Channel.EMAIL, Channel.WEBHOOK, Channel.IN_APP})


async def notify(
    db: Database,
    account_id: uuid.UUID,
    people: list[object],
    configured: frozenset[Channel],
) -> list[uuid.UUID]:
    task_id = await create_task(db, account_id, subscriber_ids=[], created_by=None)
    account = await account_row(db, account_id)
    async with db.write() as conn:
        changes = await enqueue_notification(
            conn,
            account=account,
            task_id=task_id,
            comment_id=None,
            kind=NotificationKind.TASK_CREATED,
            recipients=people,  # type: ignore[arg-type]
            configured=configured,
            message_id_domain=MESSAGE_ID_DOMAIN,
            now=T0,
        )
    return [change.delivery_id for change in changes]


async def channels_of(db: Database, ids: list[uuid.UUID]) -> list[tuple[str, str]]:
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(deliveries.c.channel, deliveries.c.address)
            .where(deliveries.c.id.in_(ids))
            .order_by(deliveries.c.position)
        )
        return [(row.channel, row.address) for row in rows]


async def add(db: Database, account_id: uuid.UUID, **fields: object) -> object:
    async with db.write() as conn:
        return await db_accounts.add_person(
            conn,
            account_id=account_id,
            name="Ann",
            **fields,  # type: ignore[arg-type]
        )


async def test_each_address_the_account_can_send_to_gets_its_own_delivery(db: Database) -> None:
    # given: a contact with every kind of address
    account = await create_account(db)
    ann = await add(
        db,
        account.account_id,
        kind=PersonKind.CONTACT,
        email="ann@example.test",
        telegram_chat_id="1234",
        phone="+15551234567",
        webhook_url="https://hooks.example.test/ann",
    )

    # when
    ids = await notify(db, account.account_id, [ann], EVERYTHING)

    # then
    assert await channels_of(db, ids) == [
        ("EMAIL", "ann@example.test"),
        ("TELEGRAM", "1234"),
        ("WHATSAPP", "+15551234567"),
        ("SMS", "+15551234567"),
        ("WEBHOOK", "https://hooks.example.test/ann"),
    ]


async def test_channels_without_credentials_and_switched_off_channels_get_none(
    db: Database,
) -> None:
    # given: no provider credentials, and Bob switched webhooks off
    account = await create_account(db)
    bob = await add(
        db,
        account.account_id,
        kind=PersonKind.EMPLOYEE,
        email="bob@example.test",
        telegram_chat_id="99",
        phone="+15557654321",
        webhook_url="https://hooks.example.test/bob",
        disabled_channels=["WEBHOOK"],
    )

    # when
    ids = await notify(db, account.account_id, [bob], NO_PROVIDERS)

    # then: email, and in-app because Bob is an employee
    assert await channels_of(db, ids) == [("EMAIL", "bob@example.test"), ("IN_APP", "in-app")]


async def test_a_shared_email_keeps_messengers_in_messages_of_their_own(db: Database) -> None:
    # given: one email to everyone (showAllRecipients)
    account = await create_account(db, show_all_recipients=True)
    people = [
        await add(db, account.account_id, kind=PersonKind.CONTACT, email=f"p{i}@example.test",
                  telegram_chat_id=str(100 + i))
        for i in range(2)
    ]  # fmt: skip

    # when
    ids = await notify(db, account.account_id, people, EVERYTHING)

    # then: one email message for both, one Telegram message each; only email has a pixel
    async with db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(messages.c.id, messages.c.channel, messages.c.pixel_id)
                .join(deliveries, deliveries.c.message_id == messages.c.id)
                .where(deliveries.c.id.in_(ids))
                .distinct()
            )
        ).all()
    by_channel = sorted((row.channel, row.pixel_id is not None) for row in rows)
    assert by_channel == [("EMAIL", True), ("TELEGRAM", False), ("TELEGRAM", False)]


async def sent_with_provider_id(db: Database, channel: Channel, provider_id: str) -> uuid.UUID:
    account = await create_account(db)
    ann = await add(db, account.account_id, kind=PersonKind.CONTACT, phone="+15551230000")
    ids = await notify(db, account.account_id, [ann], frozenset({channel}))
    async with db.write() as conn:
        await transition(
            conn, ids, DeliveryState.SENT, {"sent_at": T0, "provider_message_id": provider_id}
        )
        await add_event(conn, ids, "sent", T0)
    return ids[0]


def report(status: ReportStatus, minutes: int, **extra: str) -> ProviderReport:
    return ProviderReport(
        channel=Channel.WHATSAPP,
        provider_message_id="wamid.abc",
        status=status,
        at=T0 + dt.timedelta(minutes=minutes),
        **extra,
    )


async def test_reports_move_the_state_forward_and_never_back(db: Database) -> None:
    # given
    delivery_id = await sent_with_provider_id(db, Channel.WHATSAPP, "wamid.abc")

    # when: "read" arrives before "delivered"
    await apply_reports(db, [report(ReportStatus.READ, 2)], received_at=T0)
    await apply_reports(db, [report(ReportStatus.DELIVERED, 1)], received_at=T0)

    # then: READ stays, deliveredAt is recorded, and the history keeps both
    row = await delivery(db, delivery_id)
    assert row.state == DeliveryState.READ.value
    assert row.read_at == T0 + dt.timedelta(minutes=2)
    assert row.delivered_at == T0 + dt.timedelta(minutes=1)
    assert [e.type for e in await events_of(db, delivery_id)] == [
        "queued",
        "sent",
        "read",
        "delivered",
    ]


async def test_a_replayed_report_adds_no_second_event(db: Database) -> None:
    # given
    delivery_id = await sent_with_provider_id(db, Channel.WHATSAPP, "wamid.abc")
    await apply_reports(db, [report(ReportStatus.DELIVERED, 1)], received_at=T0)

    # when
    again = await apply_reports(db, [report(ReportStatus.DELIVERED, 1)], received_at=T0)

    # then
    assert (again.applied, again.duplicates) == (0, 1)
    assert again.changes == []
    assert [e.type for e in await events_of(db, delivery_id)].count("delivered") == 1
    async with db.read() as conn:
        count = (
            await conn.execute(sa.select(sa.func.count()).select_from(provider_reports))
        ).scalar_one()
    assert count == 1


async def test_a_failed_report_fails_the_delivery_with_the_providers_code(db: Database) -> None:
    # given
    delivery_id = await sent_with_provider_id(db, Channel.WHATSAPP, "wamid.abc")

    # when
    outcome = await apply_reports(
        db,
        [
            report(
                ReportStatus.FAILED, 3, error_code="131026", error_message="Message undeliverable"
            )
        ],
        received_at=T0,
    )

    # then
    assert outcome.applied == 1
    row = await delivery(db, delivery_id)
    assert (row.state, row.error_code, row.error_message, row.error_permanent) == (
        "FAILED",
        "131026",
        "Message undeliverable",
        True,
    )


async def test_a_report_for_an_unknown_message_changes_nothing_and_is_counted(
    db: Database,
) -> None:
    # when
    outcome = await apply_reports(db, [report(ReportStatus.READ, 1)], received_at=T0)

    # then
    assert (outcome.applied, outcome.unknown, outcome.changes) == (0, 1, [])
