"""Status webhooks through the real worker: events written by the database in the
transaction of each status change, sent signed (verified with the `standardwebhooks`
library) to a local receiver, in order, retried, replayed and disabled. On SQLite and
PostgreSQL; time is a FakeClock the tests move, except the receiver's signature check.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from broadcaster import Broadcast

from channels.email.sender import EmailSender
from common.domain import DeliveryState
from db import webhook_endpoints as db_endpoints
from db import webhook_events as db_events
from db.engine import Database
from db.tables import deliveries, send_jobs, webhook_events
from domain.webhook_events import WebhookEventType, event_type, new_secret
from sending.worker import Worker
from tests.support.builders import (
    T0,
    AccountSetup,
    FakeClock,
    add_comment,
    add_people,
    create_account,
    create_task,
    make_settings,
)
from tests.support.providers.status_receiver import StatusReceiver
from tests.support.smtp_sink import SmtpSink

ALL_TYPES = [t.value for t in WebhookEventType]


@pytest.fixture
async def receiver() -> AsyncIterator[StatusReceiver]:
    async with StatusReceiver(new_secret()) as receiver:
        yield receiver


class Workers:
    """Makes workers for a test, and closes their HTTP clients after it."""

    def __init__(self, db: Database, broadcast: Broadcast, tmp_path: Path, sink: SmtpSink):
        self.db, self.broadcast, self.tmp_path, self.sink = db, broadcast, tmp_path, sink
        self.made: list[Worker] = []

    def __call__(self, **env: str) -> tuple[Worker, FakeClock]:
        settings = make_settings(
            self.tmp_path,
            SMTP_URL=f"smtp://{self.sink.host}:{self.sink.port}",
            **{"ALLOW_PRIVATE_NETWORKS": "1", "WEBHOOK_RETRY_SECONDS": "10,60,600", **env},
        )
        clock = FakeClock(T0)
        sender = EmailSender(timeout=5, local_hostname="b.test")
        worker = Worker(self.db, self.broadcast, settings, sender=sender, clock=clock)
        self.made.append(worker)
        return worker, clock


@pytest.fixture
async def make_worker(
    db: Database, broadcast: Broadcast, tmp_path: Path, smtp_sink: SmtpSink
) -> AsyncIterator[Workers]:
    workers = Workers(db, broadcast, tmp_path, smtp_sink)
    yield workers
    for worker in workers.made:
        await worker.webhooks.aclose()
        await worker.sender.aclose()


async def drain(worker: Worker) -> None:
    """Run the worker until nothing is due, webhook jobs included."""
    while True:
        handled = await worker.run_once()
        await worker.webhooks.wait_idle()
        if handled == 0:
            return


async def endpoint(
    db: Database,
    account: AccountSetup,
    url: str,
    *,
    secret: str,
    types: Sequence[str] = ALL_TYPES,
    channels: Sequence[str] = (),
) -> uuid.UUID:
    async with db.write() as conn:
        row = await db_endpoints.create_endpoint(
            conn,
            account_id=account.account_id,
            url=url,
            event_types=types,
            channels=channels,
            secret=secret,
            now=T0,
        )
    return uuid.UUID(str(row.id))


async def comment_to(
    db: Database, account: AccountSetup, emails: Sequence[str], now: dt.datetime = T0
) -> list[uuid.UUID]:
    people = await add_people(db, account.account_id, emails)
    task_id = await create_task(
        db, account.account_id, subscriber_ids=[p.id for p in people], now=now
    )
    notified = await add_comment(
        db, account.account_id, task_id, author_id=account.owner_id, recipients=people, now=now
    )
    return notified.delivery_ids


async def event_rows(db: Database, endpoint_id: uuid.UUID) -> list[sa.Row[tuple[object, ...]]]:
    async with db.read() as conn:
        return list(
            (
                await conn.execute(
                    webhook_events.select()
                    .where(webhook_events.c.endpoint_id == endpoint_id)
                    .order_by(webhook_events.c.id)
                )
            ).all()
        )


async def test_each_status_change_is_sent_once_signed_in_order_with_a_stable_id(
    db: Database, make_worker: Workers, receiver: StatusReceiver
) -> None:
    # given: an endpoint for every event type, and a comment to two people
    worker, _ = make_worker()
    account = await create_account(db)
    assert receiver.secret is not None
    endpoint_id = await endpoint(db, account, receiver.url + "/hook", secret=receiver.secret)
    ann, bob = await comment_to(db, account, ["ann@example.test", "bob@example.test"])

    # when
    await drain(worker)

    # then: QUEUED then SENT for each delivery, each verified by the standardwebhooks
    # library, in event id order
    assert all(r.verified for r in receiver.received)
    sent = [(p["type"], p["data"]["deliveryId"]) for p in receiver.delivered()]
    assert sorted(sent[:2]) == sorted(
        [("delivery.queued", str(ann)), ("delivery.queued", str(bob))]
    )
    assert sorted(sent[2:]) == sorted([("delivery.sent", str(ann)), ("delivery.sent", str(bob))])
    ids = receiver.ids()
    assert ids == sorted(ids, key=lambda i: int(i.removeprefix("evt_")))
    assert [p["id"] for p in receiver.delivered()] == ids
    rows = await event_rows(db, endpoint_id)
    assert [row.status for row in rows] == [db_events.DELIVERED] * 4
    async with db.read() as conn:
        jobs = (await conn.execute(sa.select(sa.func.count()).select_from(send_jobs))).scalar()
    assert jobs == 0


async def test_a_failing_receiver_gets_retries_with_backoff_and_nothing_overtakes_the_failed_event(
    db: Database, make_worker: Workers, receiver: StatusReceiver
) -> None:
    # given: a receiver that fails twice, then recovers
    worker, clock = make_worker()
    account = await create_account(db)
    assert receiver.secret is not None
    endpoint_id = await endpoint(
        db, account, receiver.url, secret=receiver.secret, types=["QUEUED"]
    )
    await comment_to(db, account, ["ann@example.test", "bob@example.test"])
    receiver.answers.extend([503, 500])

    # when: the first attempt fails; nothing more goes out before the backoff ends
    await drain(worker)
    assert [r.status for r in receiver.received] == [503]
    clock.advance(7)  # the first wait is 10 s ± 20 %
    await drain(worker)
    assert [r.status for r in receiver.received] == [503]
    clock.advance(5)
    await drain(worker)
    assert [r.status for r in receiver.received] == [503, 500]
    clock.advance(75)  # the second wait: 60 s ± 20 %
    await drain(worker)

    # then: the same event three times (same id), then the next one
    first, second = (row.id for row in await event_rows(db, endpoint_id))
    assert receiver.ids(status=None) == [f"evt_{first}"] * 3 + [f"evt_{second}"]
    assert [r.status for r in receiver.received] == [503, 500, 200, 200]
    async with db.read() as conn:
        attempts = await db_events.attempts_page(
            conn, endpoint_id, before=None, limit=10, failed_only=False
        )
    assert [(a.status_code, a.succeeded) for a in reversed(attempts)] == [
        (503, False),
        (500, False),
        (200, True),
        (200, True),
    ]
    assert attempts[-1].response == "nope"


async def test_one_failing_endpoint_does_not_hold_back_another(
    db: Database, make_worker: Workers, receiver: StatusReceiver
) -> None:
    # given: two endpoints; one of them never answers
    worker, _ = make_worker(WEBHOOK_TIMEOUT_SECONDS="30")
    account = await create_account(db)
    assert receiver.secret is not None
    receiver.gate = asyncio.Event()
    async with StatusReceiver(receiver.secret) as healthy:
        await endpoint(db, account, receiver.url, secret=receiver.secret, types=["QUEUED"])
        await endpoint(db, account, healthy.url, secret=receiver.secret, types=["QUEUED"])
        await comment_to(db, account, ["ann@example.test"])

        # when
        await worker.run_once()

        # then: the healthy one got its event while the other still hangs
        await healthy.wait_for(1)
        assert receiver.received == []
        receiver.gate.set()
        await worker.webhooks.wait_idle()
    assert len(receiver.received) == 1


async def test_an_endpoint_answering_410_is_disabled_with_the_reason_and_gets_nothing_more(
    db: Database, make_worker: Workers, receiver: StatusReceiver
) -> None:
    worker, _ = make_worker()
    account = await create_account(db)
    assert receiver.secret is not None
    endpoint_id = await endpoint(db, account, receiver.url, secret=receiver.secret)
    receiver.answers.append(410)
    await comment_to(db, account, ["ann@example.test"])

    await drain(worker)

    assert [r.status for r in receiver.received] == [410]
    async with db.read() as conn:
        row = await db_endpoints.endpoint_by_id(conn, endpoint_id)
    assert row is not None
    assert row.disabled_at is not None
    assert row.disabled_reason is not None
    assert "410" in row.disabled_reason
    # what else happened (the SENT, if it came before the 410) waits, unsent
    await drain(worker)
    assert len(receiver.received) == 1
    rows = await event_rows(db, endpoint_id)
    assert [r.status for r in rows[1:]] == [db_events.PENDING] * (len(rows) - 1)


async def test_an_endpoint_failing_for_three_days_is_disabled_with_the_reason(
    db: Database, make_worker: Workers, receiver: StatusReceiver
) -> None:
    # given: a receiver that always fails, and a short retry schedule
    worker, clock = make_worker(WEBHOOK_RETRY_SECONDS="3600,3600")
    account = await create_account(db)
    assert receiver.secret is not None
    endpoint_id = await endpoint(
        db, account, receiver.url, secret=receiver.secret, types=["QUEUED"]
    )
    receiver.answers.extend([500] * 1000)

    # when: every two hours a status change; every attempt fails, events are given up
    disabled = None
    for n in range(60):
        await comment_to(db, account, [f"p{n}@example.test"], now=clock())
        await drain(worker)
        async with db.read() as conn:
            row = await db_endpoints.endpoint_by_id(conn, endpoint_id)
        assert row is not None
        if row.disabled_at is not None:
            disabled = row
            break
        clock.advance(7200)

    # then
    assert disabled is not None
    assert disabled.disabled_at is not None
    assert disabled.disabled_reason is not None
    assert disabled.disabled_at - T0 >= dt.timedelta(days=3)
    assert "every attempt failed since" in disabled.disabled_reason
    assert "500" in disabled.disabled_reason
    statuses = [r.status for r in await event_rows(db, endpoint_id)]
    assert db_events.FAILED in statuses


async def test_a_private_address_is_refused_and_the_endpoint_disabled(
    db: Database, make_worker: Workers, receiver: StatusReceiver
) -> None:
    worker, _ = make_worker(ALLOW_PRIVATE_NETWORKS="0")
    account = await create_account(db)
    assert receiver.secret is not None
    endpoint_id = await endpoint(db, account, receiver.url, secret=receiver.secret)
    await comment_to(db, account, ["ann@example.test"])

    await drain(worker)

    assert receiver.received == []
    async with db.read() as conn:
        row = await db_endpoints.endpoint_by_id(conn, endpoint_id)
    assert row is not None
    assert row.disabled_reason is not None
    assert "non-public address" in row.disabled_reason


async def test_a_replay_sends_the_same_events_again_in_order_under_the_same_ids(
    db: Database, make_worker: Workers, receiver: StatusReceiver
) -> None:
    worker, clock = make_worker()
    account = await create_account(db)
    assert receiver.secret is not None
    endpoint_id = await endpoint(db, account, receiver.url, secret=receiver.secret)
    await comment_to(db, account, ["ann@example.test", "bob@example.test"])
    await drain(worker)
    first = receiver.ids()
    rows = await event_rows(db, endpoint_id)

    # when: everything after the first event is replayed
    async with db.write() as conn:
        replayed = await db_events.replay(
            conn, endpoint_id, since=None, after=rows[0].id, now=clock()
        )
        await db_endpoints.ensure_job(conn, endpoint_id, clock())
    await drain(worker)

    # then
    assert replayed == 3
    assert receiver.ids() == first + first[1:]


async def test_the_trigger_names_each_status_change_as_the_domain_rule_does(
    db: Database, receiver: StatusReceiver
) -> None:
    # given: every transition the state machine allows, done by plain UPDATEs
    account = await create_account(db)
    assert receiver.secret is not None
    endpoint_id = await endpoint(db, account, receiver.url, secret=receiver.secret)
    (delivery_id,) = await comment_to(db, account, ["ann@example.test"])
    path = [
        DeliveryState.SENT,
        DeliveryState.FAILED,  # a bounce
        DeliveryState.QUEUED,  # a resend
        DeliveryState.FAILED,
        DeliveryState.QUEUED,
        DeliveryState.READ,
    ]
    for state in path:
        async with db.write() as conn:
            await conn.execute(
                deliveries.update().where(deliveries.c.id == delivery_id).values(state=state.value)
            )
    # a write that leaves the state alone makes no event
    async with db.write() as conn:
        await conn.execute(
            deliveries.update().where(deliveries.c.id == delivery_id).values(state="READ")
        )

    # then
    rows = await event_rows(db, endpoint_id)
    changes = [(None, DeliveryState.QUEUED), *itertools.pairwise([DeliveryState.QUEUED, *path])]
    expected = [event_type(old, new).value for old, new in changes]
    assert [row.type for row in rows] == expected
    assert "BOUNCED" in expected
