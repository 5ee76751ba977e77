"""The send worker against a real SMTP server (tests/support/smtp_sink.py), on SQLite
and PostgreSQL. Time is a FakeClock the tests move; the worker runs one round per
`run_once()`, so nothing here sleeps."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from broadcaster import Broadcast

from channels.email.sender import EmailSender
from channels.email.verp import verp_token
from common.domain import DeliveryState, Plan
from common.events import DeliveryChanged, account_channel
from common.settings import Settings
from common.tokens import BOUNCE, verify
from db import accounts as db_accounts
from db.deliveries import NewEvent, add_events, recent_sends
from db.engine import Database
from db.suppressions import suppress
from db.tables import send_jobs
from sending.worker import Worker
from tests.support.builders import (
    PUBLIC_BASE_URL,
    SECRET_KEY,
    T0,
    FakeClock,
    Scenario,
    add_comments,
    commented_task,
    count_rows,
    deliveries_of,
    delivery,
    events_of,
    job_of,
    make_settings,
    message_of,
)
from tests.support.providers.network import refused_port
from tests.support.smtp_sink import ReceivedMessage, SmtpSink, _SinkHandler

PIXEL_URL = re.compile(re.escape(PUBLIC_BASE_URL) + r"/p/([A-Za-z0-9_-]+)\.gif")


def smtp_url(sink: SmtpSink) -> str:
    return f"smtp://{sink.host}:{sink.port}"


@dataclass
class Rig:
    db: Database
    settings: Settings
    clock: FakeClock
    worker: Worker


def make_rig(db: Database, broadcast: Broadcast, tmp_path: Path, url: str, **env: str) -> Rig:
    settings = make_settings(tmp_path, SMTP_URL=url, **env)
    clock = FakeClock(T0)
    worker = Worker(
        db,
        broadcast,
        settings,
        sender=EmailSender(timeout=5, local_hostname="beacon.test"),
        clock=clock,
    )
    return Rig(db=db, settings=settings, clock=clock, worker=worker)


async def published(subscriber: Any, n: int) -> list[DeliveryChanged]:
    """The next n changes on the account's channel (each awaited, never slept for)."""
    async with asyncio.timeout(5):
        return [DeliveryChanged.decode((await subscriber.get()).message) for _ in range(n)]


def html_of(received: ReceivedMessage) -> str:
    part = received.message.get_body(preferencelist=("html",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def to_header(received: ReceivedMessage) -> list[str]:
    return [address.strip() for address in str(received.message["To"]).split(",")]


def change(scenario: Scenario, delivery_id: uuid.UUID) -> DeliveryChanged:
    return DeliveryChanged(
        account_id=scenario.account_id,
        delivery_id=delivery_id,
        task_id=scenario.task_id,
        comment_id=scenario.notified.comment_id,
    )


async def test_an_accepted_email_is_sent_with_its_message_id_and_pixel(
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # given
    rig = make_rig(db, broadcast, tmp_path, smtp_url(smtp_sink))
    scenario = await commented_task(db, ["ann@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    message = await message_of(db, delivery_id)
    rig.clock.advance(3)

    async with broadcast.subscribe(account_channel(scenario.account_id)) as subscriber:
        # when
        handled = await rig.worker.run_once()

        # then: the change was published
        assert await published(subscriber, 1) == [change(scenario, delivery_id)]

    assert handled == 1
    row = await delivery(db, delivery_id)
    assert row.state == DeliveryState.SENT.value
    assert (row.sent_at, row.accepted_by, row.attempts) == (rig.clock.now, "sink.test", 1)
    assert row.error_code is None
    events = await events_of(db, delivery_id)
    assert [e.type for e in events] == ["queued", "sent"]
    assert events[1].at == rig.clock.now
    assert events[1].detail is not None
    assert events[1].detail.startswith("250 2.0.0 Ok: queued")
    assert "sink.test" in events[1].detail
    assert await job_of(db, message.id) is None

    (received,) = await smtp_sink.wait_for_messages(1)
    assert received.rcpt_tos == ("ann@example.test",)
    # the return path is VERP: its signed token names this message
    token = verp_token(received.envelope_from)
    assert received.envelope_from.endswith("@beacon.test")
    assert token is not None
    assert verify(token, rig.settings.secret_key, BOUNCE) == message.id.hex
    assert received.message.get_content_type() == "multipart/alternative"
    assert received.message_id == message.header_message_id
    assert to_header(received) == ["ann@example.test"]
    tokens = PIXEL_URL.findall(html_of(received))
    assert len(tokens) == 1
    assert verify(tokens[0], SECRET_KEY.encode()) == message.pixel_id
    text = received.message.get_body(preferencelist=("plain",))
    assert text is not None
    assert "Looks good" in text.get_content()


async def test_a_rejected_recipient_fails_permanently_with_the_servers_reply(
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # given
    rig = make_rig(db, broadcast, tmp_path, smtp_url(smtp_sink))
    scenario = await commented_task(db, ["reject@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    message = await message_of(db, delivery_id)
    reply = "550 5.1.1 <reject@example.test>: Recipient address rejected: User unknown"

    async with broadcast.subscribe(account_channel(scenario.account_id)) as subscriber:
        # when
        await rig.worker.run_once()

        # then
        assert await published(subscriber, 1) == [change(scenario, delivery_id)]

    row = await delivery(db, delivery_id)
    assert row.state == DeliveryState.FAILED.value
    assert (row.error_code, row.error_message, row.error_permanent) == ("550", reply, True)
    assert (row.failed_at, row.sent_at, row.attempts) == (rig.clock.now, None, 1)
    assert [(e.type, e.detail) for e in await events_of(db, delivery_id)] == [
        ("queued", None),
        ("failed", reply),
        ("suppressed", f"hard bounce: {reply}"),
    ]
    assert await job_of(db, message.id) is None
    assert smtp_sink.rcpt_attempts == ["reject@example.test"]
    assert smtp_sink.messages == []


async def test_a_deferred_recipient_stays_queued_and_is_retried_later(
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # given: RETRY_BASE_SECONDS=1, so the first retry comes 0.5 to 1 s later
    rig = make_rig(db, broadcast, tmp_path, smtp_url(smtp_sink))
    scenario = await commented_task(db, ["defer@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    message = await message_of(db, delivery_id)
    now = rig.clock.now

    async with broadcast.subscribe(account_channel(scenario.account_id)) as subscriber:
        # when
        await rig.worker.run_once()

        # then
        assert await published(subscriber, 1) == [change(scenario, delivery_id)]

    row = await delivery(db, delivery_id)
    assert (row.state, row.attempts, row.error_code, row.failed_at) == ("QUEUED", 1, None, None)
    events = await events_of(db, delivery_id)
    assert [e.type for e in events] == ["queued", "retry_scheduled"]
    assert events[1].detail is not None
    assert events[1].detail.startswith(
        "attempt 1: 451 4.7.1 <defer@example.test>: Try again later; next at "
    )
    job = await job_of(db, message.id)
    assert job is not None
    assert 0.5 <= (job.run_at - now).total_seconds() <= 1
    assert (job.lease_owner, job.lease_until) == (None, None)
    # not due yet, so the same moment sends nothing
    assert await rig.worker.run_once() == 0
    assert smtp_sink.rcpt_attempts == ["defer@example.test"]


async def test_a_delivery_deferred_on_every_attempt_fails_after_the_last_one(
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # given
    rig = make_rig(db, broadcast, tmp_path, smtp_url(smtp_sink), SEND_MAX_ATTEMPTS="3")
    scenario = await commented_task(db, ["defer@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    message = await message_of(db, delivery_id)

    # when: three rounds, each once the retry is due (RETRY_MAX_SECONDS=4)
    rounds = []
    for _ in range(3):
        rounds.append(await rig.worker.run_once())
        rig.clock.advance(5)

    # then
    assert rounds == [1, 1, 1]
    row = await delivery(db, delivery_id)
    assert row.state == DeliveryState.FAILED.value
    assert row.attempts == 3
    assert row.error_code == "451"
    assert row.error_message == (
        "gave up after 3 attempts: 451 4.7.1 <defer@example.test>: Try again later"
    )
    assert row.error_permanent is False
    assert [e.type for e in await events_of(db, delivery_id)] == [
        "queued",
        "retry_scheduled",
        "retry_scheduled",
        "failed",
    ]
    assert await job_of(db, message.id) is None
    assert smtp_sink.rcpt_attempts == ["defer@example.test"] * 3
    assert await rig.worker.run_once() == 0


async def test_a_refused_connection_keeps_the_delivery_queued_and_it_is_retried(
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # given: the system relay is down (the account's relay, later, is on this machine)
    with refused_port() as port:
        rig = make_rig(
            db, broadcast, tmp_path, f"smtp://127.0.0.1:{port}", ALLOW_PRIVATE_NETWORKS="1"
        )
        scenario = await commented_task(db, ["ann@example.test"])
        (delivery_id,) = scenario.notified.delivery_ids

        # when
        assert await rig.worker.run_once() == 1

    # then
    row = await delivery(db, delivery_id)
    assert (row.state, row.attempts, row.error_code) == ("QUEUED", 1, None)
    (retry,) = [e for e in await events_of(db, delivery_id) if e.type == "retry_scheduled"]
    assert retry.detail is not None
    assert "connection refused" in retry.detail

    # and when the account's relay answers by the time of the retry
    async with db.write() as conn:
        await db_accounts.update_account(
            conn, scenario.account_id, {"smtp_relay": smtp_url(smtp_sink)}
        )
    rig.clock.advance(5)
    assert await rig.worker.run_once() == 1

    # then the retry sent it
    row = await delivery(db, delivery_id)
    assert (row.state, row.attempts, row.accepted_by) == ("SENT", 2, "sink.test")
    (received,) = await smtp_sink.wait_for_messages(1)
    assert received.rcpt_tos == ("ann@example.test",)


class _DeferOnce(_SinkHandler):
    """The sink's rules, except that an address deferred once is accepted next time."""

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if "defer" in address and self.sink.rcpt_attempts.count(address) >= 1:
            self.sink.rcpt_attempts.append(address)
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 Ok"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


async def test_one_shared_message_gets_an_outcome_per_recipient_and_retries_only_the_deferred(
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # given: one email to three addressees (showAllRecipients)
    rig = make_rig(db, broadcast, tmp_path, smtp_url(smtp_sink))
    addresses = ["ok@example.test", "reject@example.test", "defer@example.test"]
    scenario = await commented_task(db, addresses, show_all_recipients=True)
    ok, rejected, deferred = scenario.notified.delivery_ids
    message = await message_of(db, ok)

    async with broadcast.subscribe(account_channel(scenario.account_id)) as subscriber:
        # when
        await rig.worker.run_once()

        # then: the account's bell rings once for the message (subscribers read the three
        # outcomes from the event log)
        (change,) = await published(subscriber, 1)
    assert change.delivery_id in {ok, rejected, deferred}
    assert change.account_id == scenario.account_id

    rows = await deliveries_of(db, [ok, rejected, deferred])
    assert [(r.state, r.attempts) for r in rows] == [("SENT", 1), ("FAILED", 1), ("QUEUED", 1)]
    assert rows[0].accepted_by == "sink.test"
    assert (rows[1].error_code, rows[1].error_permanent) == ("550", True)
    assert rows[2].error_code is None
    (first,) = await smtp_sink.wait_for_messages(1)
    assert first.rcpt_tos == ("ok@example.test",)
    assert sorted(to_header(first)) == sorted(addresses)
    assert sorted(smtp_sink.rcpt_attempts) == sorted(addresses)

    # when: the retry falls due and the server now takes the deferred address
    # (on a new connection: a pooled one keeps the handler it was opened with)
    await rig.worker.sender.aclose()
    smtp_sink.handler = _DeferOnce(smtp_sink)
    rig.clock.advance(5)
    assert await rig.worker.run_once() == 1

    # then: only the deferred address was tried again, with the same message
    assert smtp_sink.rcpt_attempts[3:] == ["defer@example.test"]
    _, second = await smtp_sink.wait_for_messages(2)
    assert second.rcpt_tos == ("defer@example.test",)
    assert sorted(to_header(second)) == sorted(addresses)
    assert second.message_id == first.message_id == message.header_message_id
    rows = await deliveries_of(db, [ok, rejected, deferred])
    assert [(r.state, r.attempts) for r in rows] == [("SENT", 1), ("FAILED", 1), ("SENT", 2)]
    assert rows[0].sent_at == T0
    assert await job_of(db, message.id) is None


async def test_an_account_relay_sends_through_the_accounts_own_server(
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # given: the account's own SMTP server (on this machine: the operator allows that)
    async with SmtpSink(hostname="relay.customer.test") as relay:
        rig = make_rig(db, broadcast, tmp_path, smtp_url(smtp_sink), ALLOW_PRIVATE_NETWORKS="1")
        scenario = await commented_task(db, ["ann@example.test"], smtp_relay=smtp_url(relay))
        (delivery_id,) = scenario.notified.delivery_ids

        # when
        await rig.worker.run_once()

        # then
        (received,) = await relay.wait_for_messages(1)
    assert received.rcpt_tos == ("ann@example.test",)
    assert smtp_sink.rcpt_attempts == []
    assert smtp_sink.messages == []
    row = await delivery(db, delivery_id)
    assert (row.state, row.accepted_by) == ("SENT", "relay.customer.test")
    sent = (await events_of(db, delivery_id))[-1]
    assert sent.type == "sent"
    assert sent.detail is not None
    assert "relay.customer.test" in sent.detail


async def test_a_free_account_email_carries_no_pixel(
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # given
    rig = make_rig(db, broadcast, tmp_path, smtp_url(smtp_sink))
    scenario = await commented_task(db, ["ann@example.test"], plan=Plan.FREE)
    (delivery_id,) = scenario.notified.delivery_ids

    # when
    await rig.worker.run_once()

    # then: sent, without an image
    (received,) = await smtp_sink.wait_for_messages(1)
    html = html_of(received)
    assert "Looks good" in html
    assert "<img" not in html
    assert "/p/" not in html
    assert (await delivery(db, delivery_id)).state == DeliveryState.SENT.value


async def test_open_tracking_off_email_carries_no_pixel(
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # given
    rig = make_rig(db, broadcast, tmp_path, smtp_url(smtp_sink))
    await commented_task(db, ["ann@example.test"], plan=Plan.PREMIUM, open_tracking=False)

    # when
    await rig.worker.run_once()

    # then
    (received,) = await smtp_sink.wait_for_messages(1)
    assert "<img" not in html_of(received)


async def test_every_message_due_is_sent_in_one_round_each_on_its_own(
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # given: three recipients, three messages
    rig = make_rig(db, broadcast, tmp_path, smtp_url(smtp_sink))
    addresses = ["a@example.test", "b@example.test", "c@example.test"]
    scenario = await commented_task(db, addresses)

    async with broadcast.subscribe(account_channel(scenario.account_id)) as subscriber:
        # when
        handled = await rig.worker.run_once()

        # then
        changes = await published(subscriber, 3)
    assert handled == 3
    assert sorted(c.delivery_id for c in changes) == sorted(scenario.notified.delivery_ids)
    received = await smtp_sink.wait_for_messages(3)
    assert sorted(r.rcpt_tos for r in received) == [(a,) for a in addresses]
    assert len({r.message_id for r in received}) == 3
    rows = await deliveries_of(db, scenario.notified.delivery_ids)
    assert {r.state for r in rows} == {"SENT"}
    assert await rig.worker.run_once() == 0


async def test_mail_to_one_recipient_beyond_the_rate_limit_waits_for_the_window(
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # given: at most 2 emails per recipient per 600 s, and a third comment for Ann
    rig = make_rig(
        db,
        broadcast,
        tmp_path,
        smtp_url(smtp_sink),
        RECIPIENT_RATE_LIMIT="2",
        RECIPIENT_RATE_WINDOW_SECONDS="600",
    )
    scenario = await commented_task(db, ["ann@example.test"])
    await rig.worker.run_once()
    rig.clock.advance(10)
    more = await add_comments(
        db,
        scenario.account_id,
        scenario.task_id,
        author_id=scenario.account.owner_id,
        recipients=scenario.people,
        count=2,
        now=rig.clock.now,
    )
    second, third = (notified.delivery_ids[0] for notified in more)
    rig.clock.advance(1)  # both are due

    # when
    assert await rig.worker.run_once() == 2

    # then: one of the two went out, the other is held back with a reason, not failed
    rows = {row.id: row for row in await deliveries_of(db, [second, third])}
    assert sorted(row.state for row in rows.values()) == ["QUEUED", "SENT"]
    held = next(row for row in rows.values() if row.state == "QUEUED")
    assert held.attempts == 0
    events = await events_of(db, held.id)
    assert events[-1].type == "rate_limited"
    assert events[-1].detail is not None
    assert "2 emails to this address in 600 s" in events[-1].detail
    job = await job_of(db, (await message_of(db, held.id)).id)
    assert job is not None
    assert job.run_at == T0 + dt.timedelta(seconds=600)  # the first send leaves the window
    assert len(await smtp_sink.wait_for_messages(2)) == 2

    # when: the window has moved on
    rig.clock.advance(600 - 11)
    assert await rig.worker.run_once() == 1

    # then
    assert (await delivery(db, held.id)).state == "SENT"
    assert len(await smtp_sink.wait_for_messages(3)) == 3


async def test_a_suppressed_address_fails_at_once_without_an_attempt_or_a_send(
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # given: Ann's address bounced hard before
    rig = make_rig(db, broadcast, tmp_path, smtp_url(smtp_sink))
    scenario = await commented_task(db, ["Ann@Example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    async with db.write() as conn:
        await suppress(
            conn,
            account_id=scenario.account_id,
            channel="EMAIL",
            address="ann@example.test",
            reason="hard bounce: 550 5.1.1 User unknown",
            now=T0,
        )

    # when
    assert await rig.worker.run_once() == 1

    # then
    row = await delivery(db, delivery_id)
    assert (row.state, row.attempts, row.error_code, row.error_permanent) == (
        "FAILED",
        0,
        "SUPPRESSED",
        True,
    )
    assert row.error_message == "hard bounce: 550 5.1.1 User unknown"
    assert [e.type for e in await events_of(db, delivery_id)] == ["queued", "suppressed"]
    assert smtp_sink.rcpt_attempts == []


async def round_of_two(
    db: Database, broadcast: Broadcast, tmp_path: Path, smtp_sink: SmtpSink
) -> tuple[Rig, uuid.UUID, uuid.UUID]:
    """A worker, and a comment to two contacts that its next round takes together: the
    delivery meant to go through, and the one a test poisons."""
    rig = make_rig(db, broadcast, tmp_path, smtp_url(smtp_sink))
    scenario = await commented_task(db, ["ann@example.test", "poison@example.test"])
    good, poisoned = scenario.notified.delivery_ids
    return rig, good, poisoned


async def test_a_job_whose_outcome_cannot_be_written_does_not_hold_back_the_others_in_its_round(
    db: Database,
    broadcast: Broadcast,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: two messages in one round, and the events of one of them cannot be written
    rig, good, poisoned = await round_of_two(db, broadcast, tmp_path, smtp_sink)

    async def failing_add_events(conn: Any, events: Sequence[NewEvent]) -> None:
        if any(event.delivery_id == poisoned for event in events):
            raise RuntimeError("poison")
        await add_events(conn, events)

    monkeypatch.setattr("sending.outcomes.add_events", failing_add_events)

    # when
    assert await rig.worker.run_once() == 2

    # then: the other one is recorded; the poisoned one stays queued under its lease
    rows = await deliveries_of(db, [good, poisoned])
    assert [(row.state, row.attempts) for row in rows] == [("SENT", 1), ("QUEUED", 0)]
    assert await job_of(db, (await message_of(db, good)).id) is None
    job = await job_of(db, (await message_of(db, poisoned)).id)
    assert job is not None
    assert job.lease_owner == rig.worker.name


async def test_a_job_that_cannot_be_read_does_not_hold_back_the_others_in_its_round(
    db: Database,
    broadcast: Broadcast,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: two messages in one round, and the reads for one of them fail
    rig, good, poisoned = await round_of_two(db, broadcast, tmp_path, smtp_sink)

    async def failing_recent_sends(conn: Any, *args: Any, **kwargs: Any) -> Any:
        if "poison@example.test" in args[2]:
            raise RuntimeError("poison")
        return await recent_sends(conn, *args, **kwargs)

    monkeypatch.setattr("sending.worker.recent_sends", failing_recent_sends)

    # when
    assert await rig.worker.run_once() == 2

    # then: the other one was sent; the poisoned one was not tried and stays leased
    rows = await deliveries_of(db, [good, poisoned])
    assert [(row.state, row.attempts) for row in rows] == [("SENT", 1), ("QUEUED", 0)]
    (received,) = await smtp_sink.wait_for_messages(1)
    assert received.rcpt_tos == ("ann@example.test",)
    job = await job_of(db, (await message_of(db, poisoned)).id)
    assert job is not None
    assert job.lease_owner == rig.worker.name


async def test_a_running_worker_sends_round_after_round_each_message_once(
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # given: seven messages, two per round
    rig = make_rig(db, broadcast, tmp_path, smtp_url(smtp_sink), WORKER_BATCH_SIZE="2")
    addresses = [f"p{i}@example.test" for i in range(7)]
    scenario = await commented_task(db, addresses)

    # when
    running = asyncio.create_task(rig.worker.run())
    received = await smtp_sink.wait_for_messages(7)
    rig.worker.stop()
    await asyncio.wait_for(running, timeout=10)

    # then
    assert sorted(r.rcpt_tos for r in received) == [(a,) for a in addresses]
    rows = await deliveries_of(db, scenario.notified.delivery_ids)
    assert {(row.state, row.attempts) for row in rows} == {("SENT", 1)}
    assert await count_rows(db, send_jobs) == 0
