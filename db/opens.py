"""Recording many pixel opens in one transaction (the pixel's group commit).

A fixed number of set-based statements whatever the batch holds: the opens go to the
database as arrays in one statement (PostgreSQL), or as plain executemany in the driver
(SQLite, which has neither arrays nor data-modifying CTEs): four statements. Either way
no per-row work happens in SQLAlchemy.

Each open arrives with the pixel's verdict on it (pixel/confidence.py); what only the
database knows is applied here, per delivery: the time since the message was sent (the
time rule) and whether the account counts machine opens as reads. A MACHINE open that
does not count is recorded as an event and in `read_confidence`, and changes nothing
else.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncConnection

from common.domain import ReadConfidence, fast_open_reason
from common.events import DeliveryChanged


class Open(NamedTuple):
    """One pixel load, with what the pixel made of it (pixel/confidence.py)."""

    pixel_id: str
    at: dt.datetime
    confidence: ReadConfidence = ReadConfidence.HUMAN
    network: str = "unknown"
    reason: str = "counted as a read"
    # An open this many seconds or fewer after sending is MACHINE instead (the time rule:
    # only the database knows when the message was sent). None: the verdict is final.
    machine_within_seconds: float | None = None
    fast_network: str = "unknown"  # the network label of such a fast open


class Recorded(NamedTuple):
    changes: list[DeliveryChanged]  # one per delivery that got an open
    confidences: list[str]  # the verdict of each open recorded on a delivery


# Deliveries in these states become READ at their first open that counts (a state never
# moves back).
_MAY_READ = "('QUEUED', 'SENT')"
_RANK = {ReadConfidence.MACHINE: 1, ReadConfidence.PROXY: 2, ReadConfidence.HUMAN: 3}

# Each open is judged per delivery: the time rule needs the delivery's sent time, and an
# account that counts machine opens makes a MACHINE open a read. The event's detail is
# the same text as `_detail` builds for SQLite.
_POSTGRES = f"""
WITH hits AS (
    SELECT *
    FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                $6::float8[], $7::text[])
         WITH ORDINALITY AS h(pixel_id, at, confidence, network, reason, fast_within,
                              fast_network, ord)
), locked AS (
    -- Rows locked in id order: batches committing side by side never deadlock.
    SELECT d.id, d.message_id, m.pixel_id, d.sent_at, a.count_machine_opens
    FROM messages m
    JOIN deliveries d ON d.message_id = m.id
    JOIN accounts a ON a.id = d.account_id
    WHERE m.pixel_id = ANY($1::text[])
      -- A recipient whose delivery failed did not get this email: the open is not theirs.
      AND d.state <> 'FAILED'
    ORDER BY d.id
    FOR UPDATE OF d
), aged AS (
    SELECT l.id AS delivery_id, l.message_id, l.count_machine_opens, h.*,
           -- An open before the send was recorded came as fast as it gets.
           greatest(coalesce(extract(epoch FROM h.at - l.sent_at), 0), 0) AS age
    FROM locked l JOIN hits h ON h.pixel_id = l.pixel_id
), timed AS (
    SELECT *, (fast_within IS NOT NULL AND age <= fast_within) AS fast FROM aged
), judged AS (
    SELECT delivery_id, message_id, ord, at,
           CASE WHEN fast THEN 'MACHINE' ELSE confidence END AS confidence,
           CASE WHEN fast THEN fast_network ELSE network END AS network,
           CASE WHEN fast
                THEN 'opened ' || regexp_replace(round(age, 1)::text, '[.]0$', '')
                     || ' s after sending'
                ELSE reason END AS reason,
           (NOT fast AND confidence <> 'MACHINE') OR count_machine_opens AS counts
    FROM timed
), per_delivery AS (
    SELECT delivery_id,
           count(*) FILTER (WHERE counts) AS opens,
           min(at) FILTER (WHERE counts) AS first_at,
           max(CASE confidence WHEN 'HUMAN' THEN 3 WHEN 'PROXY' THEN 2 ELSE 1 END) AS best,
           array_agg(confidence) AS confidences
    FROM judged GROUP BY delivery_id
), opened AS (
    UPDATE deliveries d SET
        open_count = d.open_count + p.opens,
        state = CASE WHEN p.opens > 0 AND d.state IN {_MAY_READ} THEN 'READ'
                ELSE d.state END,
        read_at = CASE WHEN p.opens > 0 AND d.state IN {_MAY_READ} THEN p.first_at
                  ELSE d.read_at END,
        sent_at = CASE WHEN p.opens > 0 AND d.state IN {_MAY_READ}
                       THEN coalesce(d.sent_at, p.first_at) ELSE d.sent_at END,
        read_confidence = CASE greatest(p.best, CASE d.read_confidence
                                   WHEN 'HUMAN' THEN 3 WHEN 'PROXY' THEN 2
                                   WHEN 'MACHINE' THEN 1 ELSE 0 END)
                          WHEN 3 THEN 'HUMAN' WHEN 2 THEN 'PROXY' ELSE 'MACHINE' END
    FROM per_delivery p
    WHERE d.id = p.delivery_id
    RETURNING d.id, d.account_id, d.notification_id, p.confidences
), shared AS (
    SELECT message_id, count(*) AS recipients FROM locked GROUP BY message_id
), events AS (
    INSERT INTO delivery_events (delivery_id, type, at, detail)
    SELECT j.delivery_id, 'opened', j.at,
           j.confidence || ': ' || j.reason || '; network ' || j.network
           || CASE WHEN j.counts THEN '' ELSE '; not counted as a read' END
           || CASE WHEN s.recipients > 1
                   THEN '; opened by one of ' || s.recipients || ' recipients' ELSE '' END
    FROM judged j JOIN shared s ON s.message_id = j.message_id
    ORDER BY j.ord, j.delivery_id
)
SELECT o.id, o.account_id, n.task_id, n.comment_id, o.confidences
FROM opened o JOIN notifications n ON n.id = o.notification_id
"""


def _detail(
    confidence: ReadConfidence, reason: str, network: str, *, counts: bool, recipients: int
) -> str:
    """An open event's detail: "PROXY: Gmail image proxy (user agent); network google"."""
    detail = f"{confidence}: {reason}; network {network}"
    if not counts:
        detail += "; not counted as a read"
    if recipients > 1:
        detail += f"; opened by one of {recipients} recipients"
    return detail


def _judge(
    open_: Open, sent_at: dt.datetime | None, count_machine_opens: bool
) -> tuple[ReadConfidence, str, str, bool]:
    """(confidence, network, reason, counts as a read) of an open on one delivery: what
    `judged` computes in the PostgreSQL statement."""
    confidence, network, reason = open_.confidence, open_.network, open_.reason
    if open_.machine_within_seconds is not None:
        # An open before the send was recorded came as fast as it gets.
        age = 0.0 if sent_at is None else max((open_.at - sent_at).total_seconds(), 0.0)
        if age <= open_.machine_within_seconds:
            confidence, network = ReadConfidence.MACHINE, open_.fast_network
            reason = fast_open_reason(age)
    counts = confidence is not ReadConfidence.MACHINE or count_machine_opens
    return confidence, network, reason, counts


# SQLite keeps times as naive UTC text in this form (SQLAlchemy's), which sorts by time.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_SQLITE_FIND = """
SELECT d.id, d.account_id, d.message_id, m.pixel_id, n.task_id, n.comment_id,
       d.sent_at, d.read_confidence, a.count_machine_opens
FROM messages m
JOIN deliveries d ON d.message_id = m.id AND d.state <> 'FAILED'
JOIN accounts a ON a.id = d.account_id
JOIN notifications n ON n.id = d.notification_id
WHERE m.pixel_id IN ({marks})
ORDER BY d.id
"""
# ?1 opens that count, ?2 the first of them, ?3 the read confidence, ?4 the delivery.
_SQLITE_OPEN = f"""
UPDATE deliveries SET
    open_count = open_count + ?1,
    read_at = CASE WHEN ?1 > 0 AND state IN {_MAY_READ} THEN ?2 ELSE read_at END,
    state = CASE WHEN ?1 > 0 AND state IN {_MAY_READ} THEN 'READ' ELSE state END,
    read_confidence = ?3
WHERE id = ?4
"""
# Only a delivery not yet sent gets its sent time from the open: leaving sent_at out of
# the others' UPDATE spares SQLite rewriting their entries in the index that holds it.
_SQLITE_OPEN_UNSENT = f"""
UPDATE deliveries SET
    open_count = open_count + ?1,
    read_at = CASE WHEN ?1 > 0 AND state IN {_MAY_READ} THEN ?2 ELSE read_at END,
    sent_at = CASE WHEN ?1 > 0 AND state IN {_MAY_READ} THEN ?2 ELSE sent_at END,
    state = CASE WHEN ?1 > 0 AND state IN {_MAY_READ} THEN 'READ' ELSE state END,
    read_confidence = ?3
WHERE id = ?4
"""
_SQLITE_EVENT = """
INSERT INTO delivery_events (delivery_id, type, at, detail) VALUES (?, 'opened', ?, ?)
"""


@dataclass(frozen=True)
class _SqlitePlan:
    """What SQLite runs for a batch, once the deliveries behind its pixels are known."""

    sent: list[tuple[Any, ...]]
    unsent: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    recorded: Recorded


def _sqlite_find(opens: Sequence[Open]) -> tuple[str, tuple[str, ...]]:
    pixels = tuple(sorted({open_.pixel_id for open_ in opens}))
    return _SQLITE_FIND.format(marks=", ".join("?" * len(pixels))), pixels


def _sqlite_text(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime(_SQLITE_TIME)


def _sqlite_plan(found: Sequence[Any], opens: Sequence[Open]) -> _SqlitePlan:
    hits: dict[str, list[Open]] = defaultdict(list)
    for open_ in opens:
        hits[open_.pixel_id].append(open_)
    recipients: dict[str, int] = defaultdict(int)
    for row in found:
        recipients[row[3]] += 1
    sent: list[tuple[Any, ...]] = []
    unsent: list[tuple[Any, ...]] = []
    judged: list[tuple[int, int, str, str]] = []  # (order of the hit, row, at, detail)
    confidences: list[str] = []
    order = {id(open_): n for n, open_ in enumerate(opens)}
    for index, row in enumerate(found):
        sent_at = dt.datetime.fromisoformat(row[6]).replace(tzinfo=dt.UTC) if row[6] else None
        best = _RANK.get(ReadConfidence(row[7]), 0) if row[7] else 0
        counted: list[dt.datetime] = []
        for open_ in hits[row[3]]:
            confidence, network, reason, counts = _judge(open_, sent_at, bool(row[8]))
            best = max(best, _RANK[confidence])
            confidences.append(confidence)
            if counts:
                counted.append(open_.at)
            detail = _detail(
                confidence, reason, network, counts=counts, recipients=recipients[row[3]]
            )
            judged.append((order[id(open_)], index, _sqlite_text(open_.at), detail))
        first = _sqlite_text(min(counted)) if counted else None
        best_confidence = next(c for c, rank in _RANK.items() if rank == best)
        (unsent if sent_at is None else sent).append(
            (len(counted), first, best_confidence.value, row[0])
        )
    judged.sort(key=lambda entry: (entry[0], found[entry[1]][0]))
    events = [(found[index][0], at, detail) for _, index, at, detail in judged]
    changes = [
        DeliveryChanged(
            account_id=_uuid(row[1]),
            delivery_id=_uuid(row[0]),
            task_id=_uuid(row[4]),
            comment_id=_uuid(row[5]) if row[5] is not None else None,
        )
        for row in found
    ]
    return _SqlitePlan(sent, unsent, events, Recorded(changes, confidences))


def record_opens_sqlite(conn: sqlite3.Connection, opens: Sequence[Open]) -> Recorded:
    """`record_opens` on a plain sqlite3 connection, inside the caller's transaction:
    for a writer thread that does a whole batch in one call."""
    if not opens:
        return Recorded([], [])
    found = conn.execute(*_sqlite_find(opens)).fetchall()
    if not found:
        return Recorded([], [])
    plan = _sqlite_plan(found, opens)
    if plan.sent:
        conn.executemany(_SQLITE_OPEN, plan.sent)
    if plan.unsent:
        conn.executemany(_SQLITE_OPEN_UNSENT, plan.unsent)
    conn.executemany(_SQLITE_EVENT, plan.events)
    return plan.recorded


async def record_opens(conn: AsyncConnection, opens: Sequence[Open]) -> Recorded:
    """Each open is recorded on every delivery of its message that did not fail, judged
    for that delivery (the time rule); the first one that counts as a read makes them READ
    (also from QUEUED: the open proves it was sent). Unknown pixels are ignored."""
    if not opens:
        return Recorded([], [])
    if conn.dialect.name == "postgresql":
        result = await conn.exec_driver_sql(_POSTGRES, _postgres_arguments(opens))
        return _postgres_recorded(list(result.all()))
    # SQLite has no arrays: the statements are run many times, in the driver, with no
    # per-row work in SQLAlchemy.
    found: list[Any] = list((await conn.exec_driver_sql(*_sqlite_find(opens))).all())
    if not found:
        return Recorded([], [])
    plan = _sqlite_plan(found, opens)
    if plan.sent:
        await conn.exec_driver_sql(_SQLITE_OPEN, plan.sent)
    if plan.unsent:
        await conn.exec_driver_sql(_SQLITE_OPEN_UNSENT, plan.unsent)
    await conn.exec_driver_sql(_SQLITE_EVENT, plan.events)
    return plan.recorded


async def record_opens_asyncpg(conn: Any, opens: Sequence[Open]) -> Recorded:
    """`record_opens` on an asyncpg connection in autocommit: the batch is one statement,
    committed when it returns."""
    if not opens:
        return Recorded([], [])
    return _postgres_recorded(await conn.fetch(_POSTGRES, *_postgres_arguments(opens)))


def _postgres_arguments(opens: Sequence[Open]) -> tuple[list[Any], ...]:
    return (
        [open_.pixel_id for open_ in opens],
        [open_.at for open_ in opens],
        [str(open_.confidence) for open_ in opens],
        [open_.network for open_ in opens],
        [open_.reason for open_ in opens],
        [open_.machine_within_seconds for open_ in opens],
        [open_.fast_network for open_ in opens],
    )


def _postgres_recorded(rows: Sequence[Any]) -> Recorded:
    changes = [
        DeliveryChanged(
            account_id=_uuid(row[1]),
            delivery_id=_uuid(row[0]),
            task_id=_uuid(row[2]),
            comment_id=_uuid(row[3]) if row[3] is not None else None,
        )
        for row in rows
    ]
    return Recorded(changes, [confidence for row in rows for confidence in row[4] or ()])


def _uuid(value: Any) -> uuid.UUID:
    """A UUID as the driver returns it (asyncpg's own type, or SQLite's 32 hex digits)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
