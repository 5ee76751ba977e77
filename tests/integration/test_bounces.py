"""Late bounces: returned mail changes the delivery it is about, and is always kept."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from channels.email.bounce import parse_bounce
from common.domain import DeliveryState
from common.tokens import BOUNCE, sign
from db import bounces as db_bounces
from db.deliveries import transition
from db.engine import Database
from db.suppressions import list_suppressions
from db.tables import bounces
from inbound.bounces import record_bounce
from tests.support.builders import (
    SECRET_KEY,
    T0,
    commented_task,
    delivery,
    events_of,
    message_of,
)

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "bounces"
KEY = SECRET_KEY.encode()
LATER = T0 + dt.timedelta(hours=2)


async def sent_delivery_for(db: Database, address: str) -> tuple[uuid.UUID, uuid.UUID, str]:
    """A SENT delivery to `address`: (account id, delivery id, its real VERP token)."""
    scenario = await commented_task(db, [address])
    (delivery_id,) = scenario.notified.delivery_ids
    async with db.write() as conn:
        await transition(conn, [delivery_id], DeliveryState.SENT, {"sent_at": T0})
    message = await message_of(db, delivery_id)
    return scenario.account_id, delivery_id, sign(message.id.hex, KEY, BOUNCE)


def sample_for(name: str, token: str) -> bytes:
    """The sample with its VERP token replaced by one we really issued."""
    raw = (SAMPLES / name).read_bytes()
    report = parse_bounce(raw)
    assert report.verp_token is not None
    return raw.replace(report.verp_token.encode(), token.encode())


HARD = [
    ("postfix_hard_5.1.1.eml", "5.1.1", "User unknown"),
    ("exim_hard_plaintext_5.1.1.eml", "5.1.1", "550"),
    ("exim_hard_dsn_5.1.1.eml", "5.1.1", "550"),
    ("office365_hard_5.1.10.eml", "5.1.10", "RecipientNotFound"),
    ("gmail_hard_5.1.1.eml", "5.1.1", "does not exist"),
    ("qmail_hard_5.1.1.eml", "5.1.1", "550"),
]


@pytest.mark.parametrize(("sample", "status", "fragment"), HARD)
async def test_a_hard_bounce_fails_a_sent_delivery_with_the_servers_reason(
    db: Database, sample: str, status: str, fragment: str
) -> None:
    # given
    address = parse_bounce((SAMPLES / sample).read_bytes()).recipients[0].address
    account_id, delivery_id, token = await sent_delivery_for(db, address)

    # when
    outcome = await record_bounce(db, KEY, sample_for(sample, token), source="smtp", now=LATER)

    # then
    row = await delivery(db, delivery_id)
    assert row.state == DeliveryState.FAILED.value
    assert (row.error_code, row.error_permanent, row.failed_at) == (status, True, LATER)
    assert fragment in row.error_message
    assert row.sent_at == T0  # the history of having been sent stays
    assert [e.type for e in await events_of(db, delivery_id)][-2:] == ["bounced", "suppressed"]
    assert [c.delivery_id for c in outcome.changes] == [delivery_id]
    async with db.read() as conn:
        (suppressed,) = await list_suppressions(conn, account_id)
    assert (suppressed.channel, suppressed.address) == ("EMAIL", address.lower())
    assert suppressed.reason.startswith("hard bounce: ")
    async with db.read() as conn:
        (kept,) = await db_bounces.list_bounces(conn, account_id, unparsed_only=False)
    assert (kept.kind, kept.parsed, kept.delivery_id) == ("hard", True, delivery_id)


@pytest.mark.parametrize("sample", ["postfix_delayed_4.4.1.eml", "gmail_delayed_4.2.2.eml"])
async def test_a_delay_notice_is_an_event_and_changes_no_state(db: Database, sample: str) -> None:
    # given
    address = parse_bounce((SAMPLES / sample).read_bytes()).recipients[0].address
    _, delivery_id, token = await sent_delivery_for(db, address)

    # when
    await record_bounce(db, KEY, sample_for(sample, token), source="smtp", now=LATER)

    # then
    row = await delivery(db, delivery_id)
    assert (row.state, row.error_code) == (DeliveryState.SENT.value, None)
    delayed = (await events_of(db, delivery_id))[-1]
    assert delayed.type == "delayed"
    assert delayed.detail is not None
    assert "4." in delayed.detail


@pytest.mark.parametrize(
    ("sample", "event"),
    [
        ("outlook_auto_reply.eml", "auto_reply"),
        ("gmail_vacation_reply.eml", "auto_reply"),
        ("arf_abuse_yahoo.eml", "complaint"),
    ],
)
async def test_auto_replies_and_complaints_are_recorded_but_are_not_bounces(
    db: Database, sample: str, event: str
) -> None:
    # given
    address = parse_bounce((SAMPLES / sample).read_bytes()).recipients[0].address
    _, delivery_id, token = await sent_delivery_for(db, address)

    # when
    await record_bounce(db, KEY, sample_for(sample, token), source="smtp", now=LATER)

    # then
    row = await delivery(db, delivery_id)
    assert row.state == DeliveryState.SENT.value
    types = [e.type for e in await events_of(db, delivery_id)]
    assert event in types
    # a complaint also puts the address on the suppression list; an auto-reply does not
    assert ("suppressed" in types) is (event == "complaint")


async def test_one_report_with_a_hard_and_a_soft_recipient_treats_each_on_its_own(
    db: Database,
) -> None:
    # given: one shared email to both addressees of the sample
    raw = (SAMPLES / "sendmail_hard_and_soft_5.1.1_4.2.2.eml").read_bytes()
    hard_address, soft_address = (r.address for r in parse_bounce(raw).recipients)
    scenario = await commented_task(db, [hard_address, soft_address], show_all_recipients=True)
    hard_id, soft_id = scenario.notified.delivery_ids
    async with db.write() as conn:
        await transition(conn, [hard_id, soft_id], DeliveryState.SENT, {"sent_at": T0})
    message = await message_of(db, hard_id)
    token = sign(message.id.hex, KEY, BOUNCE)

    # when
    await record_bounce(
        db,
        KEY,
        sample_for("sendmail_hard_and_soft_5.1.1_4.2.2.eml", token),
        source="http",
        now=LATER,
    )

    # then
    assert (await delivery(db, hard_id)).state == DeliveryState.FAILED.value
    assert (await delivery(db, soft_id)).state == DeliveryState.SENT.value
    assert (await events_of(db, soft_id))[-1].type == "delayed"


@pytest.mark.parametrize("sample", ["unparseable_human_reply.eml", "unparseable_random_bytes.eml"])
async def test_an_unparseable_message_is_kept_for_review(db: Database, sample: str) -> None:
    # given
    _, delivery_id, token = await sent_delivery_for(db, "someone@example.test")
    raw = (SAMPLES / sample).read_bytes()
    if parse_bounce(raw).verp_token:
        raw = sample_for(sample, token)

    # when
    outcome = await record_bounce(db, KEY, raw, source="smtp", now=LATER)

    # then: nothing changed, and the raw message is stored
    assert outcome.changes == []
    assert (await delivery(db, delivery_id)).state == DeliveryState.SENT.value
    async with db.read() as conn:
        stored = await conn.execute(bounces.select().where(bounces.c.id == outcome.bounce_id))
        row = stored.one()
    assert (row.parsed, row.kind, row.raw) == (False, "unparseable", raw)


async def test_a_bounce_with_a_forged_token_changes_nothing(db: Database) -> None:
    # given: a token for this message signed with someone else's key
    _, delivery_id, _ = await sent_delivery_for(db, "bob@example.test")
    message = await message_of(db, delivery_id)
    forged = sign(message.id.hex, b"not our key", BOUNCE)

    # when
    outcome = await record_bounce(
        db, KEY, sample_for("postfix_hard_5.1.1.eml", forged), source="http", now=LATER
    )

    # then
    assert outcome.changes == []
    assert (await delivery(db, delivery_id)).state == DeliveryState.SENT.value


async def test_a_hard_bounce_after_a_read_keeps_the_read_and_records_the_bounce(
    db: Database,
) -> None:
    # given: the email was opened before the (late, odd) bounce arrived
    _, delivery_id, token = await sent_delivery_for(db, "bob@example.test")
    async with db.write() as conn:
        await transition(conn, [delivery_id], DeliveryState.READ, {"read_at": T0})

    # when
    await record_bounce(
        db, KEY, sample_for("postfix_hard_5.1.1.eml", token), source="smtp", now=LATER
    )

    # then: states never move backwards; the history has both
    assert (await delivery(db, delivery_id)).state == DeliveryState.READ.value
    assert "bounced" in [e.type for e in await events_of(db, delivery_id)]


def forged_dsn(header_message_id: str) -> bytes:
    """A hard bounce that names our message only by quoting its Message-ID: no VERP
    token, so nothing in it proves that it came back to us."""
    raw = (SAMPLES / "postfix_hard_5.1.1.eml").read_bytes()
    token = parse_bounce(raw).verp_token
    assert token is not None
    raw = raw.replace(f"bounces+{token}@bounces.beacon.test".encode(), b"postmaster@forger.test")
    raw = raw.replace(b"<5b1f0c9e7a2d4e31b8c6f4a2d9e0b7c3@beacon.test>", header_message_id.encode())
    report = parse_bounce(raw)
    assert (report.verp_token, report.original_message_id) == (None, header_message_id)
    return raw


async def test_a_bounce_that_only_quotes_a_message_id_changes_nothing_from_an_untrusted_source(
    db: Database,
) -> None:
    # given
    account_id, delivery_id, _ = await sent_delivery_for(db, "bob@example.test")
    message = await message_of(db, delivery_id)

    # when: it arrives at the SMTP listener (anyone can write a Message-ID into a DSN)
    outcome = await record_bounce(
        db, KEY, forged_dsn(message.header_message_id), source="smtp", now=LATER
    )

    # then
    assert outcome.changes == []
    assert (await delivery(db, delivery_id)).state == DeliveryState.SENT.value
    async with db.read() as conn:
        assert list(await list_suppressions(conn, account_id)) == []


async def test_a_bounce_that_only_quotes_a_message_id_applies_from_the_authenticated_route(
    db: Database,
) -> None:
    # given
    account_id, delivery_id, _ = await sent_delivery_for(db, "bob@example.test")
    message = await message_of(db, delivery_id)

    # when: the operator's MTA, which proved itself with the shared secret, pipes it in
    outcome = await record_bounce(
        db,
        KEY,
        forged_dsn(message.header_message_id),
        source="http",
        match_message_id=True,
        now=LATER,
    )

    # then
    assert [c.delivery_id for c in outcome.changes] == [delivery_id]
    assert (await delivery(db, delivery_id)).state == DeliveryState.FAILED.value
    async with db.read() as conn:
        (suppressed,) = await list_suppressions(conn, account_id)
    assert suppressed.address == "bob@example.test"


async def test_only_the_headers_and_the_first_64_kib_of_a_bounce_are_kept(db: Database) -> None:
    # given: a hard bounce quoting a 2 MiB original message
    _, delivery_id, token = await sent_delivery_for(db, "bob@example.test")
    sample = sample_for("postfix_hard_5.1.1.eml", token)
    filler = b"The draft is ready for review.\n" * (2 * 1024 * 1024 // 31)
    closing = b"--4Z6pQ10nXbz9sWN.1741079564/mail.beacon.test--"
    raw = sample.replace(closing, filler + closing)
    assert len(raw) > 2 * 1024 * 1024

    # when
    outcome = await record_bounce(db, KEY, raw, source="smtp", now=LATER)

    # then: it was read whole (and applied), but only its start is stored
    assert (await delivery(db, delivery_id)).state == DeliveryState.FAILED.value
    async with db.read() as conn:
        stored = await conn.execute(bounces.select().where(bounces.c.id == outcome.bounce_id))
        row = stored.one()
    header_end = raw.index(b"\n\n") + 2
    assert row.raw.startswith(raw[: header_end + 64 * 1024])
    marker = f"\r\n[beacon: {len(raw) - header_end - 64 * 1024} more bytes not kept]\r\n"
    assert row.raw == raw[: header_end + 64 * 1024] + marker.encode()


async def test_a_small_bounce_is_kept_byte_for_byte(db: Database) -> None:
    _, _, token = await sent_delivery_for(db, "bob@example.test")
    raw = sample_for("postfix_hard_5.1.1.eml", token)

    outcome = await record_bounce(db, KEY, raw, source="smtp", now=LATER)

    async with db.read() as conn:
        stored = await conn.execute(bounces.select().where(bounces.c.id == outcome.bounce_id))
        assert stored.one().raw == raw
