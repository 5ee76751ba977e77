"""The worker's part of status webhooks: send each endpoint's pending events, in order,
signed, and record every attempt.

An endpoint's job (in the outbox, leased like a message's) sends its events one after
the other in id order; the first that fails stops the run and sets the job's next run by
the retry schedule, so later events never overtake it. Each endpoint's job runs in a
task of its own, so a slow or failing endpoint never delays another's events (nor the
worker's messages). A run that dies loses nothing: the job's lease runs out and the
events, still PENDING, are sent again under the same ids.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from channels.addresses import BlockedAddress
from channels.http import host_of, transport_failure
from channels.webhook import WebhookChannel
from common.settings import Settings
from db import outbox
from db import webhook_endpoints as db_endpoints
from db import webhook_events as db_events
from db.engine import Database
from db.records import WebhookEndpointRecord, WebhookEventRecord
from domain.webhook_events import EventFacts, WebhookEventType, body, event_id, headers

log = logging.getLogger(__name__)

# Events read and sent per run of an endpoint's job; the job runs again while more wait.
BATCH = 500
# The first KiB of an answer is kept in the attempt log.
RESPONSE_BYTES = 1024


def facts_of(row: WebhookEventRecord) -> EventFacts:
    return EventFacts(
        id=row.id,
        type=WebhookEventType(row.type),
        occurred_at=row.occurred_at,
        delivery_id=row.delivery_id,
        task_id=row.task_id,
        comment_id=row.comment_id,
        recipient_id=row.recipient_id,
        channel=row.channel,
        address=row.address,
        old_state=row.old_state,
        new_state=row.new_state,
        error_code=row.error_code,
        error_message=row.error_message,
        read_confidence=row.read_confidence,
    )


def signing_secrets(endpoint: WebhookEndpointRecord, now: dt.datetime) -> list[str]:
    """The current secret, and the previous one while a rotation's overlap lasts."""
    found = [endpoint.secret]
    if endpoint.previous_secret and (endpoint.previous_secret_until or now) > now:
        found.append(endpoint.previous_secret)
    return found


def retry_delay(attempt: int, schedule: tuple[float, ...], rand: float | None = None) -> float:
    """The wait after failed attempt number `attempt` (1-based), within ±20 % so that
    the retries of many endpoints that failed together (one outage) spread out."""
    base = schedule[min(attempt, len(schedule)) - 1]
    r = random.random() if rand is None else rand
    return base * (0.8 + 0.4 * r)


class WebhookDispatcher:
    """Runs endpoints' jobs for a worker: each in a task, at most `webhook_concurrency`."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        owner: str,
        clock: Callable[[], dt.datetime],
        on_done: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.owner = owner
        self.clock = clock
        self._on_done = on_done
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: WebhookChannel | None = None

    @property
    def http(self) -> WebhookChannel:
        if self._http is None:
            self._http = WebhookChannel(
                timeout=self.settings.webhook_timeout_seconds,
                allow_private=self.settings.allow_private_networks,
            )
        return self._http

    @property
    def free_slots(self) -> int:
        return max(0, self.settings.webhook_concurrency - len(self._tasks))

    async def claim(self, conn: AsyncConnection) -> list[outbox.ClaimedEndpointJob]:
        """Lease due endpoints' jobs, as many as there are free slots, in the caller's
        transaction (the worker claims them with its messages' jobs, in one)."""
        free = self.free_slots
        if free == 0:
            return []
        return await outbox.claim_endpoint_jobs(
            conn,
            owner=self.owner,
            now=self.clock(),
            lease=dt.timedelta(seconds=self.settings.lease_seconds),
            limit=free,
        )

    def start(self, jobs: list[outbox.ClaimedEndpointJob]) -> int:
        """Run each claimed job in a task of its own; returns how many were started."""
        for job in jobs:
            task = asyncio.create_task(self._run(job), name=f"webhook-job-{job.job_id}")
            self._tasks.add(task)
            task.add_done_callback(self._finished)
        return len(jobs)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._on_done()

    async def wait_idle(self) -> None:
        """Until every started job has finished (tests, and a graceful stop)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def aclose(self) -> None:
        """Stop: jobs still running get one request's timeout to finish and record what
        they sent; then they are cancelled, their leases run out and another worker sends
        their unrecorded events again, under the same ids."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.settings.webhook_timeout_seconds)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._http is not None:
            await self._http.aclose()

    async def _run(self, job: outbox.ClaimedEndpointJob) -> None:
        try:
            await self._send_pending(job)
        except Exception:
            # The database may be away; the job stays leased and runs again later.
            log.exception("worker %s: webhook job %s failed", self.owner, job.job_id)

    async def _send_pending(self, job: outbox.ClaimedEndpointJob) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with self.db.read() as conn:
            endpoint = await db_endpoints.endpoint_by_id(conn, job.endpoint_id)
            events = (
                []
                if endpoint is None or endpoint.disabled_at is not None
                else await db_events.pending_events(conn, job.endpoint_id, BATCH)
            )
        if endpoint is None or endpoint.disabled_at is not None:
            async with self.db.write() as conn:
                await db_events.release_job(conn, job.job_id, self.owner, job.endpoint_id, None)
            return
        results: list[db_events.AttemptResult] = []
        run_at: dt.datetime | None = self.clock()
        disable_reason: str | None = None
        for row in events:
            result, disable_reason = await self._attempt(endpoint, row)
            results.append(result)
            if disable_reason is not None:
                break
            if result.outcome is None:
                # Retried later, and nothing after it goes first.
                delay = retry_delay(row.attempts + 1, self.settings.webhook_retry_seconds)
                run_at = result.at + dt.timedelta(seconds=delay)
                break
            # Half the lease is the budget of one run: the rest is left to record it.
            if loop.time() - started > self.settings.lease_seconds / 2:
                break
        await self._record(job, endpoint, results, run_at, disable_reason)

    async def _attempt(
        self, endpoint: WebhookEndpointRecord, row: WebhookEventRecord
    ) -> tuple[db_events.AttemptResult, str | None]:
        """One POST of one event: its result, and why the endpoint must be disabled (410,
        or a URL that can never work), if it must."""
        facts = facts_of(row)
        data = body(facts)
        message_id = event_id(facts.id)
        at = self.clock()
        signed = headers(signing_secrets(endpoint, at), message_id, int(time.time()), data)
        status: int | None = None
        reply = b""
        error: str | None = None
        disable: str | None = None
        began = time.perf_counter()
        try:
            status, reply = await self.http.post(endpoint.url, signed, data)
        except BlockedAddress as blocked:
            error = disable = str(blocked)
        except (ValueError, httpx.InvalidURL) as invalid:
            error = disable = f"the URL cannot be used: {invalid}"
        except (httpx.HTTPError, OSError, TimeoutError) as failure:
            error = transport_failure(endpoint.url, failure, host=host_of(endpoint.url)).message
        latency_ms = (time.perf_counter() - began) * 1000
        # Not channels.http.refusal_result: that ladder gives up on most 4xx, but a
        # customer's endpoint answering 400 or 404 is usually a deploy in progress, so
        # every status but 2xx and 410 is retried on the event's schedule.
        succeeded = status is not None and 200 <= status < 300
        if status == 410:
            disable = "the receiver answered 410 Gone: it no longer wants these events"
        elif status is not None and not succeeded:
            error = f"the receiver answered {status}"
        outcome: str | None = db_events.DELIVERED if succeeded else None
        if not succeeded and row.attempts + 1 > len(self.settings.webhook_retry_seconds):
            outcome = db_events.FAILED
        return (
            db_events.AttemptResult(
                event_id=facts.id,
                at=at,
                status_code=status,
                latency_ms=latency_ms,
                response=reply[:RESPONSE_BYTES].decode("utf-8", "replace") if reply else None,
                error=error,
                succeeded=succeeded,
                outcome=outcome,
            ),
            disable,
        )

    async def _record(
        self,
        job: outbox.ClaimedEndpointJob,
        endpoint: WebhookEndpointRecord,
        results: list[db_events.AttemptResult],
        run_at: dt.datetime | None,
        disable_reason: str | None,
    ) -> None:
        now = self.clock()
        async with self.db.write() as conn:
            await db_events.record_attempts(conn, endpoint.id, results)
            if results:
                last = results[-1]
                since = await db_endpoints.record_health(
                    conn, endpoint.id, succeeded=last.succeeded, now=last.at
                )
                limit = dt.timedelta(seconds=self.settings.webhook_disable_after_seconds)
                if disable_reason is None and since is not None and now - since >= limit:
                    disable_reason = (
                        f"every attempt failed since {since.isoformat()} "
                        f"(last: {last.error or last.status_code})"
                    )
            if disable_reason is not None:
                await db_endpoints.disable(conn, endpoint.id, disable_reason, now)
                log.warning(
                    "worker %s: webhook endpoint %s disabled: %s",
                    self.owner,
                    endpoint.id,
                    disable_reason,
                )
                run_at = None
            held = await db_events.release_job(conn, job.job_id, self.owner, endpoint.id, run_at)
        if not held:
            log.warning("worker %s: lost the lease on webhook job %s", self.owner, job.job_id)
