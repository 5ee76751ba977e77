"""Applying provider status reports (WhatsApp webhooks, Twilio status callbacks) to the
deliveries they name.

Reports arrive late, out of order and more than once. Each (channel, provider message
id, status) is applied once: a replay adds nothing. States never move backwards (a
"delivered" after "read" is recorded in the history and changes no state).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from channels.base import ProviderReport, ReportStatus
from common.domain import DeliveryState
from common.events import DeliveryChanged
from common.metrics import CALLBACKS
from db.deliveries import add_event, change_of, delivery_by_provider_id, transition
from db.engine import Database
from db.reports import mark_read, note_delivered, record_once

log = logging.getLogger(__name__)


@dataclass
class ReportOutcome:
    applied: int = 0
    duplicates: int = 0
    unknown: int = 0
    changes: list[DeliveryChanged] = field(default_factory=list)


async def apply_reports(
    db: Database,
    reports: Sequence[ProviderReport],
    *,
    received_at: dt.datetime,
    account_ids: Collection[uuid.UUID] | None = None,
) -> ReportOutcome:
    """`account_ids`: the accounts whose credentials proved the reports genuine; a
    report about another account's message counts as unknown (None: any account)."""
    outcome = ReportOutcome()
    async with db.write() as conn:
        for report in reports:
            row = await delivery_by_provider_id(conn, report.channel, report.provider_message_id)
            if row is None or (account_ids is not None and row.account_id not in account_ids):
                # Answered 200 all the same, so the provider stops retrying.
                outcome.unknown += 1
                CALLBACKS.labels(report.channel.value, "unknown").inc()
                log.warning(
                    "%s report for unknown message %s", report.channel, report.provider_message_id
                )
                continue
            first = await record_once(
                conn,
                channel=report.channel.value,
                provider_message_id=report.provider_message_id,
                status=report.status.value,
                received_at=received_at,
            )
            if not first:
                outcome.duplicates += 1
                CALLBACKS.labels(report.channel.value, "duplicate").inc()
                continue
            await _apply(conn, row.id, report)
            outcome.applied += 1
            CALLBACKS.labels(report.channel.value, "applied").inc()
            outcome.changes.append(change_of(row))
    return outcome


async def _apply(conn: AsyncConnection, delivery_id: uuid.UUID, report: ProviderReport) -> None:
    ids = [delivery_id]
    at = report.at
    if report.status is ReportStatus.SENT:
        await add_event(conn, ids, "provider_sent", at)
    elif report.status is ReportStatus.DELIVERED:
        await note_delivered(conn, delivery_id, at)
        await add_event(conn, ids, "delivered", at)
    elif report.status is ReportStatus.READ:
        await mark_read(conn, delivery_id, at)
        await add_event(conn, ids, "read", at)
    else:
        message = report.error_message or "the provider reported a failure"
        await transition(
            conn,
            ids,
            DeliveryState.FAILED,
            {
                "failed_at": at,
                "error_code": report.error_code or "FAILED",
                "error_message": message,
                "error_permanent": True,
            },
        )
        await add_event(conn, ids, "failed", at, f"{report.error_code or ''} {message}".strip())
