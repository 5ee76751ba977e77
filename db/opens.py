"""Recording many pixel opens in one transaction (the pixel's group commit).

The same as `db.deliveries.record_open` applied to each open in turn, in a fixed number
of set-based statements whatever the batch holds: the opens go to the database as one
array in one statement (PostgreSQL), or as plain executemany in the driver (SQLite, which
has neither arrays nor data-modifying CTEs): three statements. Either way no per-row
work happens in SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from common.events import DeliveryChanged

# (pixel id, when it was loaded)
Open = tuple[str, dt.datetime]

# Deliveries in these states become READ at their first open (a state never moves back).
_MAY_READ = "('QUEUED', 'SENT')"

_POSTGRES = f"""
WITH hits AS (
    SELECT h.pixel_id, h.at, h.ord
    FROM unnest($1::text[], $2::timestamptz[]) WITH ORDINALITY AS h(pixel_id, at, ord)
), per_message AS (
    SELECT m.id AS message_id, count(*) AS opens, min(h.at) AS first_at
    FROM hits h JOIN messages m ON m.pixel_id = h.pixel_id
    GROUP BY m.id
), locked AS (
    -- Rows locked in id order: batches committing side by side never deadlock.
    SELECT d.id, p.opens, p.first_at
    FROM deliveries d JOIN per_message p ON p.message_id = d.message_id
    -- A recipient whose delivery failed did not get this email: the open is not theirs.
    WHERE d.state <> 'FAILED'
    ORDER BY d.id
    FOR UPDATE OF d
), opened AS (
    UPDATE deliveries d SET
        open_count = d.open_count + l.opens,
        state = CASE WHEN d.state IN {_MAY_READ} THEN 'READ' ELSE d.state END,
        read_at = CASE WHEN d.state IN {_MAY_READ} THEN l.first_at ELSE d.read_at END,
        sent_at = CASE WHEN d.state IN {_MAY_READ} THEN coalesce(d.sent_at, l.first_at)
                  ELSE d.sent_at END
    FROM locked l
    WHERE d.id = l.id
    RETURNING d.id, d.account_id, d.notification_id, d.message_id
), shared AS (
    SELECT message_id, count(*) AS recipients FROM opened GROUP BY message_id
), events AS (
    INSERT INTO delivery_events (delivery_id, type, at, detail)
    SELECT o.id, 'opened', h.at,
           CASE WHEN s.recipients > 1
                THEN 'opened by one of ' || s.recipients || ' recipients' END
    FROM opened o
    JOIN shared s ON s.message_id = o.message_id
    JOIN messages m ON m.id = o.message_id
    JOIN hits h ON h.pixel_id = m.pixel_id
    ORDER BY h.ord, o.id
)
SELECT o.id, o.account_id, n.task_id, n.comment_id
FROM opened o JOIN notifications n ON n.id = o.notification_id
"""

# SQLite keeps times as naive UTC text in this form (SQLAlchemy's), which sorts by time.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_SQLITE_FIND = """
SELECT d.id, d.account_id, d.message_id, m.pixel_id, n.task_id, n.comment_id,
       d.sent_at IS NULL AS unsent
FROM messages m
JOIN deliveries d ON d.message_id = m.id AND d.state <> 'FAILED'
JOIN notifications n ON n.id = d.notification_id
WHERE m.pixel_id IN ({marks})
ORDER BY d.id
"""
_SQLITE_OPEN = """
UPDATE deliveries SET
    open_count = open_count + ?,
    read_at = CASE WHEN state IN {may_read} THEN ? ELSE read_at END,
    {sent}state = CASE WHEN state IN {may_read} THEN 'READ' ELSE state END
WHERE id = ?
"""
# Only a delivery not yet sent gets its sent time from the open: leaving sent_at out of
# the others' UPDATE spares SQLite rewriting their entries in the index that holds it.
_SQLITE_OPEN_SENT = _SQLITE_OPEN.format(may_read=_MAY_READ, sent="")
_SQLITE_OPEN_UNSENT = _SQLITE_OPEN.format(
    may_read=_MAY_READ,
    sent=f"sent_at = CASE WHEN state IN {_MAY_READ} THEN ? ELSE sent_at END,\n    ",
)
_SQLITE_EVENT = """
INSERT INTO delivery_events (delivery_id, type, at, detail) VALUES (?, 'opened', ?, ?)
"""


@dataclass(frozen=True)
class _SqlitePlan:
    """What SQLite runs for a batch, once the deliveries behind its pixels are known."""

    sent: list[tuple[Any, ...]]
    unsent: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    changes: list[DeliveryChanged]


def _sqlite_find(opens: Sequence[Open]) -> tuple[str, tuple[str, ...]]:
    pixels = tuple(sorted({pixel_id for pixel_id, _ in opens}))
    return _SQLITE_FIND.format(marks=", ".join("?" * len(pixels))), pixels


def _sqlite_plan(found: Sequence[Any], opens: Sequence[Open]) -> _SqlitePlan:
    times: dict[str, list[str]] = defaultdict(list)
    for pixel_id, at in opens:
        times[pixel_id].append(at.astimezone(dt.UTC).strftime(_SQLITE_TIME))
    by_pixel: dict[str, list[Any]] = defaultdict(list)
    sent: list[tuple[Any, ...]] = []
    unsent: list[tuple[Any, ...]] = []
    for row in found:
        by_pixel[row[3]].append(row)
        hits = times[row[3]]
        first = min(hits)
        if row[6]:
            unsent.append((len(hits), first, first, row[0]))
        else:
            sent.append((len(hits), first, row[0]))
    events: list[tuple[Any, ...]] = []
    for pixel_id, at in opens:
        recipients = by_pixel.get(pixel_id, [])
        detail = f"opened by one of {len(recipients)} recipients" if len(recipients) > 1 else None
        text = at.astimezone(dt.UTC).strftime(_SQLITE_TIME)
        events.extend((row[0], text, detail) for row in recipients)
    changes = [
        DeliveryChanged(
            account_id=_uuid(row[1]),
            delivery_id=_uuid(row[0]),
            task_id=_uuid(row[4]),
            comment_id=_uuid(row[5]) if row[5] is not None else None,
        )
        for row in found
    ]
    return _SqlitePlan(sent, unsent, events, changes)


def record_opens_sqlite(conn: sqlite3.Connection, opens: Sequence[Open]) -> list[DeliveryChanged]:
    """`record_opens` on a plain sqlite3 connection, inside the caller's transaction:
    for a writer thread that does a whole batch in one call."""
    if not opens:
        return []
    found = conn.execute(*_sqlite_find(opens)).fetchall()
    if not found:
        return []
    plan = _sqlite_plan(found, opens)
    if plan.sent:
        conn.executemany(_SQLITE_OPEN_SENT, plan.sent)
    if plan.unsent:
        conn.executemany(_SQLITE_OPEN_UNSENT, plan.unsent)
    conn.executemany(_SQLITE_EVENT, plan.events)
    return plan.changes


async def record_opens(conn: AsyncConnection, opens: Sequence[Open]) -> list[DeliveryChanged]:
    """Each open counts on every delivery of its message that did not fail; the first
    one makes them READ (also from QUEUED: the open proves it was sent). Unknown pixels
    are ignored. Returns one change per delivery that counted an open."""
    if not opens:
        return []
    if conn.dialect.name == "postgresql":
        return await _record_postgres(conn, opens)
    return await _record_sqlite(conn, opens)


async def _record_postgres(conn: AsyncConnection, opens: Sequence[Open]) -> list[DeliveryChanged]:
    result = await conn.exec_driver_sql(
        _POSTGRES, ([pixel_id for pixel_id, _ in opens], [at for _, at in opens])
    )
    return _postgres_changes(list(result.all()))


async def record_opens_asyncpg(conn: Any, opens: Sequence[Open]) -> list[DeliveryChanged]:
    """`record_opens` on an asyncpg connection in autocommit: the batch is one statement,
    committed when it returns."""
    if not opens:
        return []
    rows = await conn.fetch(_POSTGRES, [pixel_id for pixel_id, _ in opens], [at for _, at in opens])
    return _postgres_changes(rows)


def _postgres_changes(rows: Sequence[Any]) -> list[DeliveryChanged]:
    return [
        DeliveryChanged(
            account_id=_uuid(row[1]),
            delivery_id=_uuid(row[0]),
            task_id=_uuid(row[2]),
            comment_id=_uuid(row[3]) if row[3] is not None else None,
        )
        for row in rows
    ]


async def _record_sqlite(conn: AsyncConnection, opens: Sequence[Open]) -> list[DeliveryChanged]:
    # SQLite has no arrays: the statements are run many times, in the driver, with no
    # per-row work in SQLAlchemy.
    found: list[Any] = list((await conn.exec_driver_sql(*_sqlite_find(opens))).all())
    if not found:
        return []
    plan = _sqlite_plan(found, opens)
    if plan.sent:
        await conn.exec_driver_sql(_SQLITE_OPEN_SENT, plan.sent)
    if plan.unsent:
        await conn.exec_driver_sql(_SQLITE_OPEN_UNSENT, plan.unsent)
    await conn.exec_driver_sql(_SQLITE_EVENT, plan.events)
    return plan.changes


def _uuid(value: Any) -> uuid.UUID:
    """A UUID as the driver returns it (asyncpg's own type, or SQLite's 32 hex digits)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
