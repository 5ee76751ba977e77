"""The send worker: claims jobs from the outbox, hands each message to its channel, and
records the outcome per delivery in the transaction that finishes the job."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from broadcaster import Broadcast
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from channels.base import Outcome, RecipientResult
from channels.email import EmailSender, OutgoingEmail, SmtpServer, render_notification
from common.broadcast import publish_changes
from common.domain import DeliveryState
from common.events import DeliveryChanged
from common.settings import Settings
from db import outbox
from db.accounts import get_account
from db.deliveries import (
    SendBatch,
    add_event,
    change_of,
    count_queued,
    load_send_batch,
    transition,
)
from db.engine import Database
from db.tables import deliveries
from db.tasks import notification_content
from pixel.token import sign
from sending.backoff import retry_delay

log = logging.getLogger(__name__)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class _Attempt:
    """One send try of one message, as the worker saw it."""

    batch: SendBatch
    pending: list[Row[Any]]
    results: dict[str, RecipientResult]


class Worker:
    def __init__(
        self,
        db: Database,
        broadcast: Broadcast,
        settings: Settings,
        *,
        sender: EmailSender | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = db
        self.broadcast = broadcast
        self.settings = settings
        self.sender = sender or EmailSender(timeout=settings.smtp_timeout_seconds)
        self.clock = clock
        self.name = worker_name()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def wake(self) -> None:
        """New jobs are waiting: skip the rest of the idle wait."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        log.info("worker %s started", self.name)
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                handled = await self.run_once()
            except Exception:
                # The database may be away; the jobs stay leased or due and nothing is lost.
                log.exception("worker %s: a round failed", self.name)
                handled = 0
            if handled == 0 and not self._stopping.is_set():
                await self._idle()
        log.info("worker %s stopped", self.name)

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self.settings.worker_poll_seconds)

    async def run_once(self) -> int:
        """Claim what is due and send it; returns how many jobs were handled."""
        now = self.clock()
        async with self.db.write() as conn:
            jobs = await outbox.claim(
                conn,
                owner=self.name,
                now=now,
                lease=dt.timedelta(seconds=self.settings.lease_seconds),
                limit=self.settings.worker_batch_size,
            )
        if jobs:
            await asyncio.gather(*(self._handle(job) for job in jobs))
        return len(jobs)

    async def _handle(self, job: outbox.ClaimedJob) -> None:
        try:
            attempt = await self._send(job)
            changes = await self._record(job, attempt)
        except Exception:
            # Leave the job leased: when the lease runs out it is tried again.
            log.exception("worker %s: job %s failed; it will be retried", self.name, job.job_id)
            return
        await publish_changes(self.broadcast, changes)

    async def _send(self, job: outbox.ClaimedJob) -> _Attempt | None:
        async with self.db.read() as conn:
            batch = await load_send_batch(conn, job.message_id)
            if batch is None or not batch.pending:
                return None
            account = await get_account(conn, batch.message.account_id)
            content = await notification_content(
                conn, batch.notification.task_id, batch.notification.comment_id
            )
        pending = batch.pending
        pixel_url = self._pixel_url(batch.message.pixel_id)
        subject, text, html = render_notification(
            content.task_title, content.comment_body, content.author_name, pixel_url
        )
        envelope = list(dict.fromkeys(row.address for row in pending))
        email = OutgoingEmail(
            message_id=batch.message.header_message_id,
            from_header=self.settings.mail_from,
            envelope_from=_address_of(self.settings.mail_from),
            to=tuple(dict.fromkeys(row.address for row in batch.all_deliveries)),
            recipients=tuple(envelope),
            subject=subject,
            text=text,
            html=html,
        )
        try:
            server = SmtpServer.from_url(account.smtp_relay or self.settings.effective_smtp_url)
        except ValueError as error:
            results = [
                RecipientResult(address, Outcome.PERMANENT, "BAD_RELAY", str(error))
                for address in envelope
            ]
        else:
            results = await self.sender.send(email, server)
        return _Attempt(
            batch=batch,
            pending=pending,
            results={result.address: result for result in results},
        )

    def _pixel_url(self, pixel_id: str | None) -> str | None:
        if pixel_id is None:
            return None
        token = sign(pixel_id, self.settings.secret_key)
        return f"{self.settings.public_base_url}/p/{token}.gif"

    async def _record(
        self, job: outbox.ClaimedJob, attempt: _Attempt | None
    ) -> list[DeliveryChanged]:
        now = self.clock()
        async with self.db.write() as conn:
            if attempt is None:
                await outbox.finish(conn, job.job_id, self.name)
                return []
            retry_at = await self._apply_results(conn, attempt, now)
            if await count_queued(conn, job.message_id) == 0:
                held = await outbox.finish(conn, job.job_id, self.name)
            else:
                # Deliveries queued while we sent (a resend) are due now.
                held = await outbox.reschedule(conn, job.job_id, self.name, retry_at or now)
            if not held:
                log.warning("worker %s: lost the lease on job %s mid-send", self.name, job.job_id)
        return [change_of(row) for row in attempt.pending]

    async def _apply_results(
        self, conn: AsyncConnection, attempt: _Attempt, now: dt.datetime
    ) -> dt.datetime | None:
        """Write each delivery's outcome; returns when the transient ones retry."""
        attempts = await _count_attempt(conn, [row.id for row in attempt.pending])
        retry_at: dt.datetime | None = None
        for row in attempt.pending:
            if row.id not in attempts:
                continue  # no longer queued: another worker or a report got there first
            result = attempt.results[row.address]
            if result.outcome is Outcome.ACCEPTED:
                await _mark_sent(conn, row, result, now)
            elif result.outcome is Outcome.PERMANENT:
                await _mark_failed(conn, row, result.code, result.message, True, now)
            elif attempts[row.id] >= self.settings.send_max_attempts:
                message = f"gave up after {attempts[row.id]} attempts: {result.message}"
                await _mark_failed(conn, row, result.code, message, False, now)
            else:
                delay = retry_delay(
                    attempts[row.id],
                    base=self.settings.retry_base_seconds,
                    cap=self.settings.retry_max_seconds,
                )
                next_at = now + dt.timedelta(seconds=delay)
                retry_at = next_at if retry_at is None else min(retry_at, next_at)
                await add_event(
                    conn,
                    [row.id],
                    "retry_scheduled",
                    now,
                    f"attempt {attempts[row.id]}: {result.message}; next at {next_at.isoformat()}",
                )
        return retry_at


def _address_of(header: str) -> str:
    return parseaddr(header)[1]


async def _count_attempt(
    conn: AsyncConnection, delivery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Count one more attempt on each delivery still queued; returns the new counts."""
    result = await conn.execute(
        deliveries.update()
        .where(
            deliveries.c.id.in_(delivery_ids),
            deliveries.c.state == DeliveryState.QUEUED.value,
        )
        .values(attempts=deliveries.c.attempts + 1)
        .returning(deliveries.c.id, deliveries.c.attempts)
    )
    return {row.id: row.attempts for row in result.all()}


async def _mark_sent(
    conn: AsyncConnection, row: Row[Any], result: RecipientResult, now: dt.datetime
) -> None:
    await transition(
        conn, [row.id], DeliveryState.SENT, {"sent_at": now, "accepted_by": result.accepted_by}
    )
    detail = (
        result.message if not result.accepted_by else f"{result.message} (by {result.accepted_by})"
    )
    await add_event(conn, [row.id], "sent", now, detail)


async def _mark_failed(
    conn: AsyncConnection,
    row: Row[Any],
    code: str,
    message: str,
    permanent: bool,
    now: dt.datetime,
) -> None:
    await transition(
        conn,
        [row.id],
        DeliveryState.FAILED,
        {
            "failed_at": now,
            "error_code": code,
            "error_message": message,
            "error_permanent": permanent,
        },
    )
    await add_event(conn, [row.id], "failed", now, message)
