"""What a returned email tells us: a hard bounce fails its delivery (even after SENT),
a delay is noted, auto-replies and complaints are recorded, and every message is kept.

Bounces arrive at the VERP return path (an SMTP listener) or are piped in by an MTA
(POST /callbacks/email-bounce, which only takes them with the operator's shared secret).
What ties a bounce to one of our messages (ADR 0016): the VERP token's MAC, always; the
returned headers' Message-ID only where the caller says the source is trusted (the
authenticated HTTP route), because a Message-ID is no secret: every recipient sees it.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from channels.email.bounce import BounceKind, BounceReport, RecipientStatus, parse_bounce
from channels.email.verp import message_key_of
from common.domain import DeliveryState
from common.events import DeliveryChanged
from common.time import utcnow
from db import bounces as db_bounces
from db.deliveries import add_event, change_of, message_deliveries, transition
from db.engine import Database
from db.records import DeliveryRow, MessageRecord
from db.suppressions import suppress_address_of

log = logging.getLogger(__name__)

# A bounce quotes at most the original message; anything larger is not a bounce.
MAX_BOUNCE_BYTES = 10 * 1024 * 1024
# What is kept of a bounce for review: its header section and the start of its body
# (the DSN's own parts come first; the quoted original after them).
MAX_KEPT_HEADER_BYTES = 64 * 1024
MAX_KEPT_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class BounceOutcome:
    bounce_id: uuid.UUID
    report: BounceReport
    changes: list[DeliveryChanged]


async def record_bounce(
    db: Database,
    secret_key: bytes,
    raw: bytes,
    *,
    source: str,
    envelope_to: Sequence[str] = (),
    match_message_id: bool = False,
    now: dt.datetime | None = None,
) -> BounceOutcome:
    """Parse, keep (headers and the start of the body) and apply one inbound message,
    in one transaction. `match_message_id`: the source is trusted (authenticated), so a
    bounce without a VERP token may name its message by the returned Message-ID."""
    at = now or utcnow()
    report = parse_bounce(raw, envelope_to=envelope_to)
    async with db.write() as conn:
        message = await _message_of(conn, report, secret_key, match_message_id)
        rows = await message_deliveries(conn, message.id) if message is not None else []
        affected = await _apply(conn, report, rows, at)
        bounce_id = await db_bounces.insert_bounce(
            conn,
            account_id=message.account_id if message is not None else None,
            message_id=message.id if message is not None else None,
            delivery_id=affected[0].id if affected else None,
            received_at=at,
            source=source,
            kind=report.kind.value,
            parsed=report.kind is not BounceKind.UNPARSEABLE,
            summary=report.summary,
            raw=kept_part(raw),
        )
    if message is None:
        # The summary names recipients (personal data): only at debug level.
        log.info("a %s bounce names no message of ours (bounce %s)", source, bounce_id)
        log.debug("bounce %s: %s", bounce_id, report.summary)
    return BounceOutcome(bounce_id, report, [change_of(row) for row in affected])


def kept_part(raw: bytes) -> bytes:
    """What is stored of a bounce: the header section and the first 64 KiB of the body
    (each header section cut at 64 KiB too), so that nobody can fill the database
    through the bounce routes. A cut is marked at the end."""
    end = raw.find(b"\r\n\r\n")
    end = len(raw) if end < 0 else end + 4
    lf = raw.find(b"\n\n", 0, end)
    if lf >= 0:
        end = lf + 2
    header, body = raw[:end], raw[end:]
    if len(header) <= MAX_KEPT_HEADER_BYTES and len(body) <= MAX_KEPT_BODY_BYTES:
        return raw
    kept = header[:MAX_KEPT_HEADER_BYTES] + body[:MAX_KEPT_BODY_BYTES]
    return kept + b"\r\n[beacon: %d more bytes not kept]\r\n" % (len(raw) - len(kept))


async def _message_of(
    conn: AsyncConnection, report: BounceReport, secret_key: bytes, match_message_id: bool
) -> MessageRecord | None:
    if report.verp_token:
        key = message_key_of(report.verp_token, secret_key)
        if key is not None:
            return await db_bounces.message_by_id(conn, uuid.UUID(hex=key))
        log.warning("a bounce carried a VERP token with a bad signature; not trusted")
        return None
    if match_message_id and report.original_message_id:
        return await db_bounces.message_by_header(conn, report.original_message_id)
    return None


def _deliveries_for(status: RecipientStatus, rows: Sequence[DeliveryRow]) -> list[DeliveryRow]:
    matching = [row for row in rows if row.address.lower() == status.address.lower()]
    # A relay may rewrite the address (aliases, forwarding); a message to one recipient
    # can still only be about that one.
    if not matching and len(rows) == 1:
        return list(rows)
    return matching


async def _apply(
    conn: AsyncConnection, report: BounceReport, rows: Sequence[DeliveryRow], at: dt.datetime
) -> list[DeliveryRow]:
    """Apply the report to the message's deliveries; returns those it touched."""
    affected: dict[uuid.UUID, DeliveryRow] = {}
    for status in report.recipients:
        for row in _deliveries_for(status, rows):
            affected[row.id] = row
            if report.kind is BounceKind.AUTO_REPLY:
                await add_event(conn, [row.id], "auto_reply", at, report.summary)
            elif report.kind is BounceKind.COMPLAINT:
                await add_event(conn, [row.id], "complaint", at, report.summary)
                await _suppress(conn, row, f"spam complaint: {report.summary}", at)
            elif status.kind is BounceKind.HARD:
                await _hard_bounce(conn, row, status, at)
            elif status.action == "delivered":
                await add_event(conn, [row.id], "delivered", at, status.diagnostic)
            else:
                # A delay (4.x.x): the server is still trying; nothing is decided yet.
                await add_event(conn, [row.id], "delayed", at, _describe(status))
    return list(affected.values())


async def _hard_bounce(
    conn: AsyncConnection, row: DeliveryRow, status: RecipientStatus, at: dt.datetime
) -> None:
    message = _describe(status)
    await transition(
        conn,
        [row.id],
        DeliveryState.FAILED,
        {
            "failed_at": at,
            "error_code": status.status or "5.0.0",
            "error_message": message,
            "error_permanent": True,
        },
    )
    await add_event(conn, [row.id], "bounced", at, message)
    await _suppress(conn, row, f"hard bounce: {message}", at)


async def _suppress(conn: AsyncConnection, row: DeliveryRow, reason: str, at: dt.datetime) -> None:
    await suppress_address_of(conn, row, reason=reason, now=at)
    await add_event(conn, [row.id], "suppressed", at, reason)


def _describe(status: RecipientStatus) -> str:
    """The remote server's own words where the bounce quotes them."""
    if status.diagnostic:
        text = status.diagnostic
        # DSNs prefix the diagnostic with its type ("smtp; 550 5.1.1 …").
        kind, sep, rest = text.partition(";")
        if sep and kind.strip().lower() in {"smtp", "x-postfix", "x-unix"}:
            text = rest.strip()
        if status.status and status.status not in text:
            text = f"{status.status} {text}"
        return text
    return f"{status.status or 'bounced'} ({status.address})"
