"""The send worker against what it must not trust: a tenant's relay on a private network,
a channel that raises, an address with a control character, and a server that says an
address does not exist. On SQLite and PostgreSQL, with the real SMTP sink; time is a
FakeClock the tests move."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from broadcaster import Broadcast

from channels.base import RecipientResult
from channels.email.mime import OutgoingEmail
from channels.email.sender import EmailSender, SmtpServer
from common.domain import DeliveryState
from db.engine import Database
from db.suppressions import list_suppressions
from sending.worker import Worker
from tests.support.builders import (
    T0,
    FakeClock,
    add_comment,
    commented_task,
    deliveries_of,
    delivery,
    events_of,
    job_of,
    make_settings,
    message_of,
)
from tests.support.smtp_sink import SmtpSink, _SinkHandler


def make_worker(
    db: Database,
    broadcast: Broadcast,
    tmp_path: Path,
    sink: SmtpSink,
    *,
    sender: EmailSender | None = None,
    **env: str,
) -> tuple[Worker, FakeClock]:
    settings = make_settings(tmp_path, SMTP_URL=f"smtp://{sink.host}:{sink.port}", **env)
    clock = FakeClock(T0)
    worker = Worker(
        db,
        broadcast,
        settings,
        sender=sender or EmailSender(timeout=5, local_hostname="beacon.test"),
        clock=clock,
    )
    return worker, clock


# --- Item 1: the account's relay is a tenant's choice of host ---


async def test_an_account_relay_on_a_private_network_fails_for_good_without_a_connection(
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # given: an account whose relay names a service on the server's own machine
    async with SmtpSink(hostname="internal.service.test") as internal:
        worker, _ = make_worker(db, broadcast, tmp_path, smtp_sink)
        scenario = await commented_task(
            db, ["ann@example.test"], smtp_relay=f"smtp://localhost:{internal.port}"
        )
        (delivery_id,) = scenario.notified.delivery_ids

        # when
        assert await worker.run_once() == 1

        # then: refused before any connection, for good, in words that quote no banner
        assert internal.connections_opened == 0
    row = await delivery(db, delivery_id)
    assert (row.state, row.error_code, row.error_permanent) == (
        DeliveryState.FAILED.value,
        "BLOCKED_ADDRESS",
        True,
    )
    assert "non-public address" in row.error_message
    assert "internal.service.test" not in row.error_message
    assert smtp_sink.rcpt_attempts == []
    assert await job_of(db, (await message_of(db, delivery_id)).id) is None


# --- Item 7: a channel that raises ---


class _RaisingSender(EmailSender):
    """An email channel with a bug: it raises on every message, quoting the address."""

    async def send(self, email: OutgoingEmail, server: SmtpServer) -> list[RecipientResult]:
        raise RuntimeError(f"unexpected input: {email.recipients!r}")


async def test_a_channel_that_raises_every_time_ends_failed_once_the_attempts_run_out(
    db: Database,
    broadcast: Broadcast,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given
    worker, clock = make_worker(
        db, broadcast, tmp_path, smtp_sink, sender=_RaisingSender(timeout=5), SEND_MAX_ATTEMPTS="3"
    )
    scenario = await commented_task(db, ["bob@example.test"])
    (delivery_id,) = scenario.notified.delivery_ids
    message = await message_of(db, delivery_id)
    caplog.set_level(logging.INFO, logger="sending.worker")

    # when: three rounds, each once the retry is due (RETRY_MAX_SECONDS=4)
    rounds = []
    for _ in range(3):
        rounds.append(await worker.run_once())
        clock.advance(5)

    # then: FAILED with a clear reason, and the job has left the queue
    assert rounds == [1, 1, 1]
    row = await delivery(db, delivery_id)
    assert (row.state, row.attempts, row.error_code, row.error_permanent) == (
        DeliveryState.FAILED.value,
        3,
        "INTERNAL_ERROR",
        False,
    )
    assert row.error_message == (
        "gave up after 3 attempts: internal error in the email channel (RuntimeError); "
        "the worker log has the details"
    )
    assert [e.type for e in await events_of(db, delivery_id)] == [
        "queued",
        "retry_scheduled",
        "retry_scheduled",
        "failed",
    ]
    assert await job_of(db, message.id) is None
    assert await worker.run_once() == 0
    # and the log has one warning per attempt, never an error, never the address
    logged = [r for r in caplog.records if r.name == "sending.worker" and r.levelno >= logging.INFO]
    warnings = [r for r in logged if "failed unexpectedly" in r.getMessage()]
    assert [r.levelno for r in warnings] == [logging.WARNING] * 3
    assert all(r.levelno < logging.ERROR for r in logged)
    assert not any("bob@example.test" in r.getMessage() or r.exc_info for r in logged)


# --- Item 7: an address with a control character ---


@pytest.mark.parametrize(
    "bad", ["bob\x00@example.test", "bo\r\nb@example.test", "bob\x1b@example.test"]
)
async def test_an_address_with_a_control_character_fails_for_good_and_spoils_no_other(
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path, bad: str
) -> None:
    if "\x00" in bad and not db.is_sqlite:
        pytest.skip("PostgreSQL text cannot hold a NUL byte, so no such address is stored")
    # given: one email to two addressees (showAllRecipients), one address unusable
    worker, _ = make_worker(db, broadcast, tmp_path, smtp_sink)
    scenario = await commented_task(db, [bad, "ann@example.test"], show_all_recipients=True)
    bad_id, ann_id = scenario.notified.delivery_ids

    # when
    assert await worker.run_once() == 1

    # then: the bad one failed for good at its first attempt; the other was sent
    bad_row, ann_row = await deliveries_of(db, [bad_id, ann_id])
    assert (bad_row.state, bad_row.attempts, bad_row.error_code, bad_row.error_permanent) == (
        DeliveryState.FAILED.value,
        1,
        "INVALID_ADDRESS",
        True,
    )
    assert bad_row.error_message.endswith("it contains a control character")
    assert ann_row.state == DeliveryState.SENT.value
    (received,) = await smtp_sink.wait_for_messages(1)
    assert received.rcpt_tos == ("ann@example.test",)
    assert str(received.message["To"]) == "ann@example.test"
    assert await job_of(db, (await message_of(db, bad_id)).id) is None


# --- Item 11: a synchronous hard bounce suppresses ---

REPLIES = {
    "nouser": "550 5.1.1 <{}>: Recipient address rejected: User unknown",
    "nodomain": "550 5.1.2 <{}>: Recipient address rejected: Domain not found",
    "disabled": "550 5.2.1 <{}>: The email account that you tried to reach is disabled",
    "bare": "550 <{}>... User unknown",
    "policy": "550 5.7.1 <{}>: Recipient address rejected: Access denied",
    "spam": "550 Message rejected as spam",
    "full": "552 5.2.2 <{}>: Mailbox full",
    "senderdomain": "550 5.1.8 <bounces@beacon.test>: Sender address rejected: Domain not found",
}
SUPPRESSED = {"nouser", "nodomain", "disabled", "bare"}


class _ReplyByLocalPart(_SinkHandler):
    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        self.sink.rcpt_attempts.append(address)
        return REPLIES[address.partition("@")[0]].format(address)


async def test_a_server_saying_the_mailbox_does_not_exist_suppresses_the_address_and_a_policy_refusal_does_not(  # noqa: E501
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # given: one contact per kind of 5xx reply to RCPT TO
    smtp_sink.handler = _ReplyByLocalPart(smtp_sink)
    worker, clock = make_worker(db, broadcast, tmp_path, smtp_sink)
    addresses = [f"{name}@example.test" for name in REPLIES]
    scenario = await commented_task(db, addresses)

    # when
    await worker.run_once()

    # then: every one failed for good; the dead mailboxes are suppressed, as a hard
    # bounce (DSN) would have done, and the others are not
    rows = await deliveries_of(db, scenario.notified.delivery_ids)
    assert {(row.state, row.error_permanent) for row in rows} == {("FAILED", True)}
    async with db.read() as conn:
        suppressed = {
            s.address: s.reason for s in await list_suppressions(conn, scenario.account_id)
        }
    assert set(suppressed) == {f"{name}@example.test" for name in SUPPRESSED}
    nouser = "nouser@example.test"
    assert suppressed[nouser] == "hard bounce: " + REPLIES["nouser"].format(nouser)
    for row in rows:
        types = [e.type for e in await events_of(db, row.id)]
        dead = row.address.partition("@")[0] in SUPPRESSED
        assert types == (["queued", "failed", "suppressed"] if dead else ["queued", "failed"])

    # when: the next comment goes to the same people
    clock.advance(5)
    attempts_before = len(smtp_sink.rcpt_attempts)
    notified = await add_comment(
        db,
        scenario.account_id,
        scenario.task_id,
        author_id=scenario.account.owner_id,
        recipients=scenario.people,
        now=clock.now,
    )
    await worker.run_once()

    # then: the suppressed addresses fail at once, without being tried
    tried = smtp_sink.rcpt_attempts[attempts_before:]
    assert sorted(tried) == sorted(a for a in addresses if a.partition("@")[0] not in SUPPRESSED)
    for row in await deliveries_of(db, notified.delivery_ids):
        if row.address.partition("@")[0] in SUPPRESSED:
            assert (row.state, row.error_code, row.attempts) == ("FAILED", "SUPPRESSED", 0)
