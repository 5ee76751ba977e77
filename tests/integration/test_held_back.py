"""A delivery the recipient rate limit holds back says until when, in the database, and
says it no longer once it is tried again (issue 13, item 14). The worker against a real
SMTP server, on SQLite and PostgreSQL, with a clock the test moves."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from broadcaster import Broadcast

from channels.email.sender import EmailSender
from db.engine import Database
from sending.worker import Worker
from tests.support.builders import (
    T0,
    FakeClock,
    add_comments,
    commented_task,
    delivery,
    make_settings,
)
from tests.support.smtp_sink import SmtpSink


async def test_a_held_back_delivery_carries_until_when_and_loses_it_once_sent(
    db: Database, broadcast: Broadcast, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # given: one email per recipient per 600 s, and Ann's first email sent at T0
    clock = FakeClock(T0)
    settings = make_settings(
        tmp_path,
        SMTP_URL=f"smtp://{smtp_sink.host}:{smtp_sink.port}",
        RECIPIENT_RATE_LIMIT="1",
        RECIPIENT_RATE_WINDOW_SECONDS="600",
    )
    worker = Worker(
        db, broadcast, settings, sender=EmailSender(timeout=5, local_hostname="t"), clock=clock
    )
    scenario = await commented_task(db, ["ann@example.test"])
    assert await worker.run_once() == 1
    (first,) = scenario.notified.delivery_ids
    assert (await delivery(db, first)).held_until is None
    clock.advance(10)
    (more,) = await add_comments(
        db,
        scenario.account_id,
        scenario.task_id,
        author_id=scenario.account.owner_id,
        recipients=scenario.people,
        count=1,
        now=clock.now,
    )
    (second,) = more.delivery_ids

    # when: the worker reaches the second
    assert await worker.run_once() == 1

    # then: it is held back until the first send leaves the window
    held = await delivery(db, second)
    assert (held.state, held.attempts) == ("QUEUED", 0)
    assert held.held_until == T0 + dt.timedelta(seconds=600)

    # when: the window has moved on and it is sent
    clock.advance(600)
    assert await worker.run_once() == 1

    # then: it is sent and no longer held
    sent = await delivery(db, second)
    assert (sent.state, sent.held_until) == ("SENT", None)
