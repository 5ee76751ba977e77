"""What a send attempt comes to, per delivery: sent, failed (and whether for good),
held back by the rate limit, or retried later; gathered for the round's one write."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from channels.base import Outcome, RecipientResult
from common.domain import Channel, DeliveryState
from common.settings import Settings
from db.deliveries import NewEvent, SendBatch, add_events, hold, transition
from db.records import DeliveryRow
from db.suppressions import suppress_address_of
from sending.backoff import retry_delay

# The code of a delivery refused because its address is on the suppression list.
SUPPRESSED = "SUPPRESSED"


@dataclass(frozen=True)
class Attempt:
    """One send try of one message, as the worker saw it."""

    batch: SendBatch
    pending: list[DeliveryRow]
    results: dict[str, RecipientResult]
    # Addresses over their rate limit, and when they may receive mail again.
    held_back: dict[str, dt.datetime]


@dataclass
class Writes:
    """A round's outcomes, written together in the transaction that finishes its jobs."""

    # (delivery id, values) for each state change.
    sent: list[tuple[uuid.UUID, dict[str, Any]]] = field(default_factory=list)
    failed: list[tuple[uuid.UUID, dict[str, Any]]] = field(default_factory=list)
    events: list[NewEvent] = field(default_factory=list)
    suppress: list[tuple[DeliveryRow, str]] = field(default_factory=list)
    # (delivery id, until when) for each delivery the rate limit holds back.
    held: list[tuple[uuid.UUID, dt.datetime]] = field(default_factory=list)

    async def apply(self, conn: AsyncConnection, now: dt.datetime) -> None:
        for state, changes in (
            (DeliveryState.SENT, self.sent),
            (DeliveryState.FAILED, self.failed),
        ):
            # One UPDATE per distinct set of values: usually one for all that were sent.
            groups: dict[tuple[tuple[str, Any], ...], list[uuid.UUID]] = defaultdict(list)
            for delivery_id, values in changes:
                groups[tuple(values.items())].append(delivery_id)
            for values_key, ids in groups.items():
                await transition(conn, ids, state, dict(values_key))
        held: dict[dt.datetime, list[uuid.UUID]] = defaultdict(list)
        for delivery_id, until in self.held:
            held[until].append(delivery_id)
        for until, ids in held.items():
            await hold(conn, ids, until)
        for row, reason in self.suppress:
            await suppress_address_of(conn, row, reason=reason, now=now)
        await add_events(conn, self.events)


def add_outcomes(
    writes: Writes,
    attempt: Attempt,
    attempts: Mapping[uuid.UUID, int],
    now: dt.datetime,
    settings: Settings,
) -> dt.datetime | None:
    """Each delivery's outcome, added to `writes`; returns when the transient ones
    retry."""
    retry_at: dt.datetime | None = None
    for row in attempt.pending:
        if row.address in attempt.held_back:
            resume_at = attempt.held_back[row.address]
            retry_at = resume_at if retry_at is None else min(retry_at, resume_at)
            writes.held.append((row.id, resume_at))
            writes.events.append(
                NewEvent(
                    row.id,
                    "rate_limited",
                    now,
                    f"held back: {settings.recipient_rate_limit} emails to this "
                    f"address in {settings.recipient_rate_window_seconds:g} s; "
                    f"next at {resume_at.isoformat()}",
                )
            )
            continue
        result = attempt.results[row.address]
        if result.code == SUPPRESSED:
            _mark_failed(writes, row, result.code, result.message, True, now)
            continue
        if row.id not in attempts:
            continue  # no longer queued: another worker or a report got there first
        if result.outcome is Outcome.ACCEPTED:
            _mark_sent(writes, row, result, now)
        elif result.outcome is Outcome.PERMANENT:
            _mark_failed(writes, row, result.code, result.message, True, now)
            reason = _suppression_reason(row, result)
            if reason is not None:
                writes.suppress.append((row, reason))
                writes.events.append(NewEvent(row.id, "suppressed", now, reason))
        elif attempts[row.id] >= settings.send_max_attempts:
            message = f"gave up after {attempts[row.id]} attempts: {result.message}"
            _mark_failed(writes, row, result.code, message, False, now)
        else:
            delay = result.retry_after or retry_delay(
                attempts[row.id],
                base=settings.retry_base_seconds,
                cap=settings.retry_max_seconds,
            )
            next_at = now + dt.timedelta(seconds=delay)
            retry_at = next_at if retry_at is None else min(retry_at, next_at)
            writes.events.append(
                NewEvent(
                    row.id,
                    "retry_scheduled",
                    now,
                    f"attempt {attempts[row.id]}: {result.message}; next at {next_at.isoformat()}",
                )
            )
    return retry_at


def _mark_sent(writes: Writes, row: DeliveryRow, result: RecipientResult, now: dt.datetime) -> None:
    writes.sent.append(
        (
            row.id,
            {
                "sent_at": now,
                "accepted_by": result.accepted_by,
                "provider_message_id": result.provider_message_id,
            },
        )
    )
    detail = (
        result.message if not result.accepted_by else f"{result.message} (by {result.accepted_by})"
    )
    writes.events.append(NewEvent(row.id, "sent", now, detail))


def _mark_failed(
    writes: Writes,
    row: DeliveryRow,
    code: str,
    message: str,
    permanent: bool,
    now: dt.datetime,
) -> None:
    writes.failed.append(
        (
            row.id,
            {
                "failed_at": now,
                "error_code": code,
                "error_message": message,
                "error_permanent": permanent,
            },
        )
    )
    event = "suppressed" if code == SUPPRESSED else "failed"
    writes.events.append(NewEvent(row.id, event, now, message))


def _suppression_reason(row: DeliveryRow, result: RecipientResult) -> str | None:
    """Why a permanent failure puts the address on the suppression list, if it does."""
    if row.channel == Channel.TELEGRAM.value and result.code == "403":
        # A bot the person blocked stays blocked: sending again only earns more 403s.
        return f"bot blocked: {result.message}"
    if result.dead_address:
        # A mailbox the server says does not exist, refused while we sent: the same as
        # the hard bounce that would have come back later (sending/bounces.py).
        return f"hard bounce: {result.message}"
    return None
