"""The send worker: claims jobs from the outbox, hands each message to its channel, and
records the outcome per delivery (sending/outcomes.py) in the transaction that finishes the
job."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from broadcaster import Broadcast

from broadcast import publish_changes
from channels.base import ChannelCredentials, MessengerChannel, Outcome, RecipientResult
from channels.email.sender import EmailSender, SmtpServer
from common.domain import Channel
from common.events import DeliveryChanged
from common.metrics import SENDS
from common.settings import Settings
from common.time import utcnow
from db import outbox
from db.accounts import accounts_by_ids
from db.credentials import get_credentials
from db.deliveries import (
    SendBatch,
    change_of,
    count_attempts,
    load_send_batches,
    queued_counts,
    recent_sends,
)
from db.engine import Database
from db.records import AccountRecord
from db.suppressions import normal
from db.suppressions import reasons as suppression_reasons
from db.tasks import NotificationContent, notification_content
from domain.retention import purge_expired
from sending.compose import compose_email, compose_notice
from sending.outcomes import SUPPRESSED, Attempt, Writes, add_outcomes
from sending.webhook_events import WebhookDispatcher

# The code of a send that failed with an unexpected exception (a bug, or input a channel
# did not expect).
INTERNAL_ERROR = "INTERNAL_ERROR"

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class _PreparedJob:
    """A claimed job, and what the round read for it: what to send, and to whom."""

    job: outbox.ClaimedJob
    # None: the message is gone, or has nothing queued; the job is only finished.
    batch: SendBatch | None = None
    account: AccountRecord | None = None
    content: NotificationContent | None = None
    credentials: ChannelCredentials | None = None
    to_send: list[str] = field(default_factory=list)
    # Suppressed addresses fail at once, with the first reason.
    suppressed: dict[str, str] = field(default_factory=dict)
    held_back: dict[str, dt.datetime] = field(default_factory=dict)
    # Sends counted against the rate limit until their outcome is recorded.
    reserved: Counter[tuple[uuid.UUID, str]] = field(default_factory=Counter)


@dataclass
class _Reads:
    """What a round's jobs need, read in one transaction."""

    batches: dict[uuid.UUID, SendBatch]
    accounts: dict[uuid.UUID, AccountRecord]
    # By notification id.
    contents: dict[uuid.UUID, NotificationContent]
    # By (account, channel): the normal form of each suppressed address, and why.
    suppressed: dict[tuple[uuid.UUID, str], dict[str, str]]
    credentials: dict[uuid.UUID, ChannelCredentials]
    # By account: recent email send times per address (the rate limit's window).
    recent: dict[uuid.UUID, dict[str, list[dt.datetime]]]


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
        # Built on first use: their HTTP clients cost half a second of start-up, which an
        # email-only worker need not pay.
        self._channels = channels
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
        # Status webhooks: each endpoint's job in a task of its own; one that finishes
        # wakes the loop, as its endpoint may have more.
        self.webhooks = WebhookDispatcher(
            db, settings, owner=self.name, clock=clock, on_done=self.wake
        )

    @property
    def channels(self) -> Mapping[Channel, MessengerChannel]:
        if self._channels is None:
            from channels.registry import messenger_channels  # imports httpx: on first use

            self._channels = messenger_channels(self.settings)
        return self._channels

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
        await self.webhooks.aclose()
        await self.sender.aclose()
        for channel in (self._channels or {}).values():
            await channel.aclose()
        log.info("worker %s stopped", self.name)

    async def _purge_if_due(self) -> None:
        """Every PURGE_INTERVAL_SECONDS, when idle: drop what no plan shows any more."""
        loop_time = asyncio.get_running_loop().time()
        if loop_time < self._next_purge:
            return
        self._next_purge = loop_time + self.settings.purge_interval_seconds
        try:
            deleted = await purge_expired(self.db, self.settings, self.clock())
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
        jobs, plans, started = await self._claim()
        if plans:
            await self._handle(plans)
        return len(jobs) + started

    async def _claim(self) -> tuple[list[outbox.ClaimedJob], list[_PreparedJob], int]:
        """Lease due messages' jobs and status-webhook endpoints' jobs in one transaction
        (on SQLite every write transaction queues for the one writer), and start the
        endpoints' jobs; returns the messages' jobs, prepared, and how many started."""
        now = self.clock()
        async with self.db.write() as conn:
            endpoint_jobs = await self.webhooks.claim(conn)
            jobs = await outbox.claim(
                conn,
                owner=self.name,
                now=now,
                lease=dt.timedelta(seconds=self.settings.lease_seconds),
                limit=self.settings.worker_batch_size,
            )
        started = self.webhooks.start(endpoint_jobs)
        return jobs, (await self._prepare_all(jobs) if jobs else []), started

    async def _handle(self, plans: list[_PreparedJob]) -> None:
        """Send, and record every outcome in one transaction. Where that fails, each job
        is recorded alone, so that one bad job cannot hold back the others; a job that
        fails alone stays leased and is tried again when its lease runs out."""
        try:
            sent = await asyncio.gather(*(self._send(plan) for plan in plans))
            done = [(plan.job, attempt) for plan, attempt in zip(plans, sent, strict=True)]
            try:
                changes = await self._record(done)
            except Exception:
                log.exception("worker %s: recording a round failed; each job alone", self.name)
                changes = []
                for job, attempt in done:
                    try:
                        changes += await self._record([(job, attempt)])
                    except Exception:
                        log.exception(
                            "worker %s: job %s failed; it will be retried", self.name, job.job_id
                        )
        finally:
            for plan in plans:
                self._in_flight -= plan.reserved  # drops addresses that reach zero
        for job_changes in changes:
            await publish_changes(self.broadcast, job_changes)

    async def _prepare_all(self, jobs: list[outbox.ClaimedJob]) -> list[_PreparedJob]:
        try:
            reads = await self._read(jobs)
            readable = [(job, reads) for job in jobs]
        except Exception:
            log.exception("worker %s: reading a round failed; each job alone", self.name)
            readable = []
            for job in jobs:
                try:
                    readable.append((job, await self._read([job])))
                except Exception:
                    log.exception(
                        "worker %s: job %s failed; it will be retried", self.name, job.job_id
                    )
        # In claim order, with no await in between: each plan counts its sends against
        # the rate limit before the next one looks.
        plans: list[_PreparedJob] = []
        messages: set[uuid.UUID] = set()
        for job, reads in readable:
            if job.message_id in messages:
                # A second job for a message in this round: sending it again would be a
                # duplicate; the first job keeps what it does not send.
                plans.append(_PreparedJob(job))
                continue
            messages.add(job.message_id)
            try:
                plans.append(self._prepare(job, reads))
            except Exception:
                log.exception("worker %s: job %s failed; it will be retried", self.name, job.job_id)
        return plans

    async def _read(self, jobs: list[outbox.ClaimedJob]) -> _Reads:
        window = dt.timedelta(seconds=self.settings.recipient_rate_window_seconds)
        async with self.db.read() as conn:
            batches = await load_send_batches(
                conn, list(dict.fromkeys(job.message_id for job in jobs))
            )
            live = [batch for batch in batches.values() if batch.pending]
            accounts = await accounts_by_ids(
                conn, list({batch.message.account_id for batch in live})
            )
            contents: dict[uuid.UUID, NotificationContent] = {}
            addresses: dict[tuple[uuid.UUID, str], dict[str, None]] = defaultdict(dict)
            for batch in live:
                notification = batch.notification
                if notification.id not in contents:
                    contents[notification.id] = await notification_content(
                        conn,
                        notification.task_id,
                        notification.comment_id,
                        notification.message_text,
                    )
                pair = (batch.message.account_id, batch.message.channel)
                addresses[pair].update(dict.fromkeys(row.address for row in batch.pending))
            suppressed: dict[tuple[uuid.UUID, str], dict[str, str]] = {}
            credentials: dict[uuid.UUID, ChannelCredentials] = {}
            recent: dict[uuid.UUID, dict[str, list[dt.datetime]]] = {}
            for (account_id, channel), wanted in addresses.items():
                found = await suppression_reasons(conn, account_id, channel, list(wanted))
                known = {normal(channel, address): reason for address, reason in found.items()}
                suppressed[(account_id, channel)] = known
                if channel != Channel.EMAIL.value:
                    if account_id not in credentials:
                        credentials[account_id] = ChannelCredentials(
                            **await get_credentials(conn, account_id)
                        )
                    continue
                recent[account_id] = await recent_sends(
                    conn,
                    account_id,
                    Channel.EMAIL,
                    [a for a in wanted if normal(channel, a) not in known],
                    since=self.clock() - window,
                    limit=self.settings.recipient_rate_limit,
                )
        return _Reads(batches, accounts, contents, suppressed, credentials, recent)

    def _prepare(self, job: outbox.ClaimedJob, reads: _Reads) -> _PreparedJob:
        batch = reads.batches.get(job.message_id)
        if batch is None or not batch.pending:
            return _PreparedJob(job)
        account = reads.accounts[batch.message.account_id]
        channel = Channel(batch.message.channel)
        known = reads.suppressed[(account.id, channel.value)]
        suppressed: dict[str, str] = {}
        addresses: list[str] = []
        for address in dict.fromkeys(row.address for row in batch.pending):
            reason = known.get(normal(channel.value, address))
            if reason is None:
                addresses.append(address)
            else:
                suppressed[address] = reason
        held_back: dict[str, dt.datetime] = {}
        reserved: Counter[tuple[uuid.UUID, str]] = Counter()
        if channel is Channel.EMAIL:
            held_back = self._rate_limited(account.id, addresses, reads.recent[account.id])
            # Counted as in flight until the outcome is recorded: a later job in this
            # round, for the same address, must see this send.
            reserved.update((account.id, a) for a in addresses if a not in held_back)
            self._in_flight += reserved
        return _PreparedJob(
            job=job,
            batch=batch,
            account=account,
            content=reads.contents[batch.notification.id],
            credentials=reads.credentials.get(account.id),
            to_send=[address for address in addresses if address not in held_back],
            suppressed=suppressed,
            held_back=held_back,
            reserved=reserved,
        )

    async def _send(self, plan: _PreparedJob) -> Attempt | None:
        """The attempt; None when there was nothing to send."""
        batch, account, content = plan.batch, plan.account, plan.content
        if batch is None or account is None or content is None:
            return None
        results = {
            address: RecipientResult(address, Outcome.PERMANENT, SUPPRESSED, reason)
            for address, reason in plan.suppressed.items()
        }
        channel = Channel(batch.message.channel)
        try:
            if channel is Channel.EMAIL:
                sent = await self._deliver(account, batch, content, plan.to_send)
            else:
                assert plan.credentials is not None
                sent = await self._deliver_messenger(
                    channel, plan.credentials, batch, content, plan.to_send
                )
        except Exception as error:
            # A bug, or input the channel did not expect: counted as a failed attempt like
            # any other, so that it ends FAILED once the attempts run out instead of being
            # retried (with a traceback) forever.
            sent = self._internal_error(plan, channel, error)
        results.update((result.address, result) for result in sent)
        return Attempt(
            batch=batch, pending=batch.pending, results=results, held_back=plan.held_back
        )

    def _internal_error(
        self, plan: _PreparedJob, channel: Channel, error: Exception
    ) -> list[RecipientResult]:
        # Once per attempt and without the address (the exception's text may quote it);
        # the traceback only at debug level.
        log.warning(
            "worker %s: job %s: the %s channel failed unexpectedly (%s); counted as an attempt",
            self.name,
            plan.job.job_id,
            channel.value,
            type(error).__name__,
        )
        log.debug("worker %s: job %s: traceback", self.name, plan.job.job_id, exc_info=error)
        message = (
            f"internal error in the {channel.value.lower()} channel ({type(error).__name__}); "
            "the worker log has the details"
        )
        return [
            RecipientResult(address, Outcome.TRANSIENT, INTERNAL_ERROR, message)
            for address in plan.to_send
        ]

    async def _deliver(
        self,
        account: AccountRecord,
        batch: SendBatch,
        content: NotificationContent,
        envelope: list[str],
    ) -> list[RecipientResult]:
        if not envelope:
            return []
        email = compose_email(self.settings, batch, content, envelope)
        try:
            if account.smtp_relay:
                # The tenant's own server: only a public one, unless the operator allows
                # private networks (channels/addresses.py).
                server = SmtpServer.from_url(
                    account.smtp_relay, pin_public=not self.settings.allow_private_networks
                )
            else:
                server = SmtpServer.from_url(self.settings.effective_smtp_url)
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

    def _rate_limited(
        self,
        account_id: uuid.UUID,
        addresses: list[str],
        recent: Mapping[str, list[dt.datetime]],
    ) -> dict[str, dt.datetime]:
        """Addresses that already got their share of mail in the window (their recent
        sends, as read, and those in flight), with the time the oldest of those sends
        leaves it."""
        window = dt.timedelta(seconds=self.settings.recipient_rate_window_seconds)
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
        return held

    async def _record(
        self, done: list[tuple[outbox.ClaimedJob, Attempt | None]]
    ) -> list[list[DeliveryChanged]]:
        """Every outcome, and each job finished or rescheduled, in one transaction;
        returns each job's changes, to publish once it has committed."""
        now = self.clock()
        writes = Writes()
        retry_at: dict[int, dt.datetime | None] = {}
        async with self.db.write() as conn:
            # Held back or suppressed, a delivery was not tried: no attempt to count.
            attempts = await count_attempts(
                conn,
                [
                    row.id
                    for _, attempt in done
                    if attempt is not None
                    for row in attempt.pending
                    if row.address not in attempt.held_back
                    and attempt.results[row.address].code != SUPPRESSED
                ],
            )
            for job, attempt in done:
                if attempt is not None:
                    retry_at[job.job_id] = add_outcomes(
                        writes, attempt, attempts, now, self.settings
                    )
            await writes.apply(conn, now)
            queued = await queued_counts(
                conn, [job.message_id for job, attempt in done if attempt is not None]
            )
            finishing = [
                job.job_id
                for job, attempt in done
                if attempt is None or queued[job.message_id] == 0
            ]
            held = await outbox.finish_many(conn, finishing, self.name)
            for job, _ in done:
                if job.job_id not in retry_at or job.job_id in finishing:
                    continue
                # Deliveries queued while we sent (a resend) are due now.
                if await outbox.reschedule(
                    conn, job.job_id, self.name, retry_at[job.job_id] or now
                ):
                    held.add(job.job_id)
        for job, attempt in done:
            if attempt is not None and job.job_id not in held:
                log.warning("worker %s: lost the lease on job %s mid-send", self.name, job.job_id)
        return [
            [] if attempt is None else [change_of(row) for row in attempt.pending]
            for _, attempt in done
        ]
