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
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broadcaster import Broadcast
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from channels.base import ChannelCredentials, MessengerChannel, Outcome, RecipientResult
from channels.email import EmailSender, SmtpServer
from channels.registry import messenger_channels
from common.broadcast import publish_changes
from common.domain import Channel, DeliveryState
from common.events import DeliveryChanged
from common.metrics import SENDS
from common.settings import Settings
from db import outbox
from db.accounts import get_account
from db.credentials import get_credentials
from db.deliveries import (
    SendBatch,
    add_event,
    change_of,
    count_queued,
    load_send_batch,
    recent_sends,
    transition,
)
from db.engine import Database
from db.purge import purge
from db.suppressions import reasons as suppression_reasons
from db.suppressions import suppress
from db.tables import deliveries
from db.tasks import NotificationContent, notification_content
from sending.backoff import retry_delay
from sending.compose import compose_email, compose_notice

log = logging.getLogger(__name__)

# The code of a delivery refused because its address is on the suppression list.
SUPPRESSED = "SUPPRESSED"


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
    # Addresses over their rate limit, and when they may receive mail again.
    held_back: dict[str, dt.datetime]
    # Sends counted against the rate limit until their outcome is recorded.
    reserved: Counter[tuple[uuid.UUID, str]]


class Worker:
    def __init__(
        self,
        db: Database,
        broadcast: Broadcast,
        settings: Settings,
        *,
        sender: EmailSender | None = None,
        channels: Mapping[Channel, MessengerChannel] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = db
        self.broadcast = broadcast
        self.settings = settings
        self.sender = sender or EmailSender(
            timeout=settings.smtp_timeout_seconds, pool_size=settings.smtp_pool_size
        )
        self.channels = channels if channels is not None else messenger_channels(settings)
        self.clock = clock
        self.name = worker_name()
        # At most this many sends at once per channel: providers throttle bursts.
        self._slots = {
            channel: asyncio.Semaphore(
                settings.email_concurrency
                if channel is Channel.EMAIL
                else settings.channel_concurrency
            )
            for channel in Channel
        }
        # Sends this worker has started but not recorded yet, per (account, address):
        # the database cannot count them, so the rate limit adds them.
        self._in_flight: Counter[tuple[uuid.UUID, str]] = Counter()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._next_purge = 0.0

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
                await self._purge_if_due()
                await self._idle()
        await self.sender.aclose()
        for channel in self.channels.values():
            await channel.aclose()
        log.info("worker %s stopped", self.name)

    async def _purge_if_due(self) -> None:
        """Every PURGE_INTERVAL_SECONDS, when idle: drop what no plan shows any more."""
        loop_time = asyncio.get_running_loop().time()
        if loop_time < self._next_purge:
            return
        self._next_purge = loop_time + self.settings.purge_interval_seconds
        cutoff = self.clock() - dt.timedelta(days=self.settings.longest_history_days)
        try:
            deleted = await purge(self.db, older_than=cutoff)
        except Exception:
            log.exception("worker %s: purge failed; it runs again later", self.name)
            return
        if deleted:
            log.info("worker %s purged %d old notifications", self.name, deleted)

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
        attempt: _Attempt | None = None
        try:
            attempt = await self._send(job)
            changes = await self._record(job, attempt)
        except Exception:
            # Leave the job leased: when the lease runs out it is tried again.
            log.exception("worker %s: job %s failed; it will be retried", self.name, job.job_id)
            return
        finally:
            if attempt is not None:
                self._in_flight -= attempt.reserved  # drops addresses that reach zero
        await publish_changes(self.broadcast, changes)

    async def _send(self, job: outbox.ClaimedJob) -> _Attempt | None:
        async with self.db.read() as conn:
            batch = await load_send_batch(conn, job.message_id)
            if batch is None or not batch.pending:
                return None
            account = await get_account(conn, batch.message.account_id)
            content = await notification_content(
                conn,
                batch.notification.task_id,
                batch.notification.comment_id,
                batch.notification.message_text,
            )
            channel = Channel(batch.message.channel)
            addresses = list(dict.fromkeys(row.address for row in batch.pending))
            suppressed = await suppression_reasons(conn, account.id, channel.value, addresses)
            addresses = [address for address in addresses if address not in suppressed]
            credentials = ChannelCredentials(**await get_credentials(conn, account.id))
            held_back = (
                await self._rate_limited(conn, account.id, addresses)
                if channel is Channel.EMAIL
                else {}
            )
        # What is never sent: suppressed addresses fail at once, with the first reason.
        results = {
            address: RecipientResult(address, Outcome.PERMANENT, SUPPRESSED, reason)
            for address, reason in suppressed.items()
        }
        to_send = [address for address in addresses if address not in held_back]
        # The rate limit counted these as in flight (email only) until they are recorded.
        reserved = Counter((account.id, address) for address in to_send if channel is Channel.EMAIL)
        try:
            if channel is Channel.EMAIL:
                sent = await self._deliver(account, batch, content, to_send)
            else:
                sent = await self._deliver_messenger(channel, credentials, batch, content, to_send)
        except BaseException:
            self._in_flight -= reserved
            raise
        results.update((result.address, result) for result in sent)
        return _Attempt(
            batch=batch,
            pending=batch.pending,
            results=results,
            held_back=held_back,
            reserved=reserved,
        )

    async def _deliver(
        self,
        account: Row[Any],
        batch: SendBatch,
        content: NotificationContent,
        envelope: list[str],
    ) -> list[RecipientResult]:
        if not envelope:
            return []
        email = compose_email(self.settings, batch, content, envelope)
        try:
            server = SmtpServer.from_url(account.smtp_relay or self.settings.effective_smtp_url)
        except ValueError as error:
            return [
                RecipientResult(address, Outcome.PERMANENT, "BAD_RELAY", str(error))
                for address in envelope
            ]
        async with self._slots[Channel.EMAIL]:
            results = await self.sender.send(email, server)
        for result in results:
            SENDS.labels(Channel.EMAIL.value, result.outcome.value.lower()).inc()
        return results

    async def _deliver_messenger(
        self,
        channel: Channel,
        credentials: ChannelCredentials,
        batch: SendBatch,
        content: NotificationContent,
        addresses: list[str],
    ) -> list[RecipientResult]:
        """A messenger message has one delivery (only email is ever shared)."""
        results = []
        for address in addresses:
            notice = compose_notice(batch, content, address)
            async with self._slots[channel]:
                result = await self.channels[channel].send(notice, credentials)
            SENDS.labels(channel.value, result.outcome.value.lower()).inc()
            results.append(result)
        return results

    async def _rate_limited(
        self, conn: AsyncConnection, account_id: uuid.UUID, addresses: list[str]
    ) -> dict[str, dt.datetime]:
        """Addresses that already got their share of mail in the window, with the time
        the oldest of those sends leaves it."""
        window = dt.timedelta(seconds=self.settings.recipient_rate_window_seconds)
        recent = await recent_sends(
            conn,
            account_id,
            Channel.EMAIL,
            addresses,
            since=self.clock() - window,
            limit=self.settings.recipient_rate_limit,
        )
        limit = self.settings.recipient_rate_limit
        held: dict[str, dt.datetime] = {}
        for address in addresses:
            sent_times = recent.get(address, [])
            in_flight = self._in_flight[(account_id, address)]
            if len(sent_times) + in_flight >= limit:
                # When the oldest counted send leaves the window (an in-flight one has
                # not started its window yet: try again a full window from now).
                oldest = len(sent_times) + in_flight - limit
                held[address] = (
                    sent_times[oldest] + window
                    if oldest < len(sent_times)
                    else self.clock() + window
                )
            else:
                # Counted at once, with no await since the read: a concurrent job for
                # the same address must see this send.
                self._in_flight[(account_id, address)] += 1
        return held

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
        # Held back or suppressed, a delivery was not tried: no attempt to count.
        attempts = await _count_attempt(
            conn,
            [
                row.id
                for row in attempt.pending
                if row.address not in attempt.held_back
                and attempt.results[row.address].code != SUPPRESSED
            ],
        )
        retry_at: dt.datetime | None = None
        for row in attempt.pending:
            if row.address in attempt.held_back:
                resume_at = attempt.held_back[row.address]
                retry_at = resume_at if retry_at is None else min(retry_at, resume_at)
                await add_event(
                    conn,
                    [row.id],
                    "rate_limited",
                    now,
                    f"held back: {self.settings.recipient_rate_limit} emails to this address "
                    f"in {self.settings.recipient_rate_window_seconds:g} s; "
                    f"next at {resume_at.isoformat()}",
                )
                continue
            result = attempt.results[row.address]
            if result.code == SUPPRESSED:
                await _mark_failed(conn, row, result.code, result.message, True, now)
                continue
            if row.id not in attempts:
                continue  # no longer queued: another worker or a report got there first
            if result.outcome is Outcome.ACCEPTED:
                await _mark_sent(conn, row, result, now)
            elif result.outcome is Outcome.PERMANENT:
                await _mark_failed(conn, row, result.code, result.message, True, now)
                if _suppresses(row, result):
                    await suppress(
                        conn,
                        account_id=row.account_id,
                        channel=row.channel,
                        address=row.address,
                        reason=f"bot blocked: {result.message}",
                        now=now,
                    )
            elif attempts[row.id] >= self.settings.send_max_attempts:
                message = f"gave up after {attempts[row.id]} attempts: {result.message}"
                await _mark_failed(conn, row, result.code, message, False, now)
            else:
                delay = result.retry_after or retry_delay(
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
        conn,
        [row.id],
        DeliveryState.SENT,
        {
            "sent_at": now,
            "accepted_by": result.accepted_by,
            "provider_message_id": result.provider_message_id,
        },
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
    event = "suppressed" if code == SUPPRESSED else "failed"
    await add_event(conn, [row.id], event, now, message)


def _suppresses(row: Row[Any], result: RecipientResult) -> bool:
    """A bot the person blocked stays blocked: sending again only earns more 403s."""
    return row.channel == Channel.TELEGRAM.value and result.code == "403"
