"""Recording many pixel opens in one transaction (the pixel's group commit).

A fixed number of set-based statements whatever the batch holds: one on PostgreSQL (the
opens as texts, data-modifying CTEs), a handful on SQLite (the opens as JSON, judged into
a scratch table the others read). Either way no per-row work happens in Python, and the
judgement is in SQL on both (ADR 0013).

Each open arrives with the pixel's verdict on it (pixel/confidence.py); what only the
database knows is applied here, per delivery: the time since the message was sent (the
time rule) and whether the account counts machine opens as reads. A MACHINE open that
does not count is recorded as an event and in `read_confidence`, and changes nothing
else.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncConnection

from common.domain import ReadConfidence
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
    # One per account whose deliveries got an open: what rings its subscribers' bell.
    changes: list[DeliveryChanged]
    # How many opens were recorded on a delivery, by verdict (a shared message's open
    # counts once per delivery).
    confidences: Counter[str]


def _nothing() -> Recorded:
    return Recorded([], Counter())


# Deliveries in these states become READ at their first open that counts (a state never
# moves back).
_MAY_READ = "('QUEUED', 'SENT')"

# Each open is judged per delivery: the time rule needs the delivery's sent time, and an
# account that counts machine opens makes a MACHINE open a read. The event's detail is
# the same text as `_detail` builds for SQLite.
#
# The opens come in as three space-separated texts (pixel ids, times in microseconds since
# the epoch, verdict numbers) and the batch's few distinct verdicts as arrays: the driver
# encodes an array element by element (about a microsecond each, a timestamp several),
# which cost more than the rest of the batch's client side together.
_POSTGRES = f"""
WITH verdicts AS (
    SELECT *
    FROM unnest($4::text[], $5::text[], $6::text[], $7::float8[], $8::text[])
         WITH ORDINALITY AS v(confidence, network, reason, fast_within, fast_network,
                              number)
), hits AS (
    SELECT h.pixel_id, h.ord, timestamptz 'epoch' + h.micros * interval '1 microsecond' AS at,
           v.confidence, v.network, v.reason, v.fast_within, v.fast_network
    FROM unnest(string_to_array($1, ' '), string_to_array($2, ' ')::int8[],
                string_to_array($3, ' ')::int4[])
         WITH ORDINALITY AS h(pixel_id, micros, verdict, ord)
    JOIN verdicts v ON v.number = h.verdict
), locked AS (
    -- Rows locked in id order: batches committing side by side never deadlock.
    SELECT d.id, d.account_id, d.notification_id, d.message_id, m.pixel_id, d.sent_at,
           a.count_machine_opens
    FROM messages m
    JOIN deliveries d ON d.message_id = m.id
    JOIN accounts a ON a.id = d.account_id
    WHERE m.pixel_id = ANY(string_to_array($1, ' '))
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
           max(CASE confidence WHEN 'HUMAN' THEN 3 WHEN 'PROXY' THEN 2 ELSE 1 END) AS best
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
), bells AS (
    -- One change per account rings its subscribers' bell; which delivery names it
    -- does not matter (they read what changed from the event log).
    SELECT DISTINCT ON (account_id) id, account_id, notification_id
    FROM locked ORDER BY account_id, id
), verdict_counts AS (
    SELECT count(*) FILTER (WHERE confidence = 'HUMAN') AS human,
           count(*) FILTER (WHERE confidence = 'PROXY') AS proxy,
           count(*) FILTER (WHERE confidence = 'MACHINE') AS machine
    FROM judged
)
SELECT b.id, b.account_id, n.task_id, n.comment_id, c.human, c.proxy, c.machine
FROM bells b JOIN notifications n ON n.id = b.notification_id CROSS JOIN verdict_counts c
"""


# SQLite judges the opens in SQL too, in one statement into a scratch table that the
# others read: no per-row work in Python, and the driver lets go of the GIL for the whole
# of each statement rather than once per row (the writer thread would otherwise wait for
# the busy event loop's thread at every row). Times are SQLAlchemy's text
# ('2026-11-27 09:30:00.000000'), compared here in whole microseconds. The scratch table
# is the connection's own (TEMP) and empty between batches; it is written inside the
# batch's transaction, so a batch that fails leaves nothing in it.
_SQLITE_SCRATCH = """
CREATE TEMP TABLE IF NOT EXISTS judged_opens (
    ord INTEGER, delivery_id TEXT, account_id TEXT, notification_id TEXT, sent_at TEXT,
    recipients INTEGER, at TEXT, confidence TEXT, network TEXT, reason TEXT, counts INTEGER
)
"""
_SQLITE_JUDGE = """
INSERT INTO temp.judged_opens
WITH verdicts AS (
    SELECT key + 1 AS number, value ->> 0 AS confidence, value ->> 1 AS network,
           value ->> 2 AS reason, value ->> 3 AS fast_within, value ->> 4 AS fast_network
    FROM json_each(?2)
), hits AS (
    SELECT h.key AS ord, h.value ->> 0 AS pixel_id, h.value ->> 1 AS micros, v.*
    FROM json_each(?1) AS h JOIN verdicts AS v ON v.number = h.value ->> 2
), found AS (
    SELECT d.id AS delivery_id, d.account_id, d.notification_id, d.message_id, m.pixel_id,
           d.sent_at, d.read_confidence, a.count_machine_opens,
           unixepoch(substr(d.sent_at, 1, 19)) * 1000000
               + CAST(substr(d.sent_at, 21, 6) AS INTEGER) AS sent_micros,
           (SELECT count(*) FROM deliveries AS o
            WHERE o.message_id = m.id AND o.state <> 'FAILED') AS recipients
    FROM messages AS m
    JOIN deliveries AS d ON d.message_id = m.id AND d.state <> 'FAILED'
    JOIN accounts AS a ON a.id = d.account_id
    WHERE m.pixel_id IN (SELECT pixel_id FROM hits)
), timed AS (
    SELECT f.*, h.ord, h.micros, h.confidence, h.network, h.reason, h.fast_network,
           -- An open before the send was recorded came as fast as it gets.
           max(coalesce(h.micros - f.sent_micros, 0), 0) AS age,
           h.fast_within IS NOT NULL
               AND max(coalesce(h.micros - f.sent_micros, 0), 0) <= h.fast_within * 1000000
               AS fast
    FROM found AS f JOIN hits AS h ON h.pixel_id = f.pixel_id
), tenths AS (
    -- The age in tenths of a second, rounded half up as PostgreSQL's round() does.
    SELECT *, (age + 50000) / 100000 AS tenths FROM timed
), judged AS (
    SELECT delivery_id, account_id, notification_id, sent_at, recipients, ord,
           strftime('%Y-%m-%d %H:%M:%S', micros / 1000000, 'unixepoch')
               || printf('.%06d', micros % 1000000) AS at,
           CASE WHEN fast THEN 'MACHINE' ELSE confidence END AS confidence,
           CASE WHEN fast THEN fast_network ELSE network END AS network,
           CASE WHEN fast
                THEN 'opened ' || (tenths / 10)
                     || CASE WHEN tenths % 10 = 0 THEN '' ELSE '.' || (tenths % 10) END
                     || ' s after sending'
                ELSE reason END AS reason,
           (NOT fast AND confidence <> 'MACHINE') OR count_machine_opens AS counts
    FROM tenths
)
SELECT ord, delivery_id, account_id, notification_id, sent_at, recipients, at,
       confidence, network, reason, counts
FROM judged
"""
# What rings each account's bell, how many opens of each verdict were recorded, and
# whether any delivery was sent or not sent yet (each has its UPDATE).
_SQLITE_BELLS = """
SELECT b.delivery_id, b.account_id, n.task_id, n.comment_id,
       c.human, c.proxy, c.machine, c.sent, c.unsent
FROM (SELECT account_id, min(delivery_id) AS delivery_id
      FROM temp.judged_opens GROUP BY account_id) AS b
JOIN deliveries AS d ON d.id = b.delivery_id
JOIN notifications AS n ON n.id = d.notification_id
CROSS JOIN (SELECT sum(confidence = 'HUMAN') AS human, sum(confidence = 'PROXY') AS proxy,
                   sum(confidence = 'MACHINE') AS machine,
                   sum(sent_at IS NOT NULL) AS sent, sum(sent_at IS NULL) AS unsent
            FROM temp.judged_opens) AS c
"""
_SQLITE_EVENTS = """
INSERT INTO delivery_events (delivery_id, type, at, detail)
SELECT delivery_id, 'opened', at,
       confidence || ': ' || reason || '; network ' || network
       || CASE WHEN counts THEN '' ELSE '; not counted as a read' END
       || CASE WHEN recipients > 1
               THEN '; opened by one of ' || recipients || ' recipients' ELSE '' END
FROM temp.judged_opens
ORDER BY ord, delivery_id
"""
_SQLITE_CLEAR = "DELETE FROM temp.judged_opens"


def _sqlite_opened(*, sent: bool) -> str:
    """Per delivery: the opens that count, the first of them, the best verdict. Deliveries
    not sent yet get their sent time from the open; the others' UPDATE leaves sent_at out,
    which spares SQLite rewriting their entries in the index that holds it."""
    reads = f"p.opens > 0 AND state IN {_MAY_READ}"
    sent_at = "" if sent else f"sent_at = CASE WHEN {reads} THEN p.first_at ELSE sent_at END,"
    return f"""
UPDATE deliveries SET
    open_count = open_count + p.opens,
    read_at = CASE WHEN {reads} THEN p.first_at ELSE read_at END,
    {sent_at}
    state = CASE WHEN {reads} THEN 'READ' ELSE state END,
    read_confidence = CASE max(p.best, CASE read_confidence
                               WHEN 'HUMAN' THEN 3 WHEN 'PROXY' THEN 2
                               WHEN 'MACHINE' THEN 1 ELSE 0 END)
                      WHEN 3 THEN 'HUMAN' WHEN 2 THEN 'PROXY' ELSE 'MACHINE' END
FROM (SELECT delivery_id, sum(counts) AS opens, min(CASE WHEN counts THEN at END) AS first_at,
             max(CASE confidence WHEN 'HUMAN' THEN 3 WHEN 'PROXY' THEN 2 ELSE 1 END) AS best
      FROM temp.judged_opens WHERE sent_at IS {"NOT" if sent else ""} NULL
      GROUP BY delivery_id) AS p
WHERE deliveries.id = p.delivery_id
"""


_SQLITE_OPENED_SENT = _sqlite_opened(sent=True)
_SQLITE_OPENED_UNSENT = _sqlite_opened(sent=False)


def _sqlite_arguments(opens: Sequence[Open]) -> tuple[str, str]:
    """The opens and their distinct verdicts, as two JSON arrays."""
    verdicts, numbers = _numbered_verdicts(opens)
    hits = [
        [open_.pixel_id, _micros(open_.at), number]
        for open_, number in zip(opens, numbers, strict=True)
    ]
    return json.dumps(hits), json.dumps([[str(v[0]), *v[1:]] for v in verdicts])


def _sqlite_writes(bells: Sequence[Any]) -> list[str]:
    """The statements that write the judged opens, once the bells are read (none if no
    open was on a delivery: the scratch table is empty then)."""
    if not bells:
        return []
    sent, unsent = bells[0][7], bells[0][8]
    return [
        _SQLITE_EVENTS,
        *([_SQLITE_OPENED_SENT] if sent else []),
        *([_SQLITE_OPENED_UNSENT] if unsent else []),
        _SQLITE_CLEAR,
    ]


def _sqlite_recorded(rows: Sequence[Any]) -> Recorded:
    changes = [
        DeliveryChanged(
            account_id=_uuid(row[1]),
            delivery_id=_uuid(row[0]),
            task_id=_uuid(row[2]),
            comment_id=_uuid(row[3]) if row[3] is not None else None,
        )
        for row in rows
    ]
    return Recorded(changes, _verdict_counts(rows))


def record_opens_sqlite(conn: sqlite3.Connection, opens: Sequence[Open]) -> Recorded:
    """`record_opens` on a plain sqlite3 connection, inside the caller's transaction:
    for a writer thread that does a whole batch in one call."""
    if not opens:
        return _nothing()
    conn.execute(_SQLITE_SCRATCH)
    conn.execute(_SQLITE_JUDGE, _sqlite_arguments(opens))
    bells = conn.execute(_SQLITE_BELLS).fetchall()
    for statement in _sqlite_writes(bells):
        conn.execute(statement)
    return _sqlite_recorded(bells)


async def record_opens(conn: AsyncConnection, opens: Sequence[Open]) -> Recorded:
    """Each open is recorded on every delivery of its message that did not fail, judged
    for that delivery (the time rule); the first one that counts as a read makes them READ
    (also from QUEUED: the open proves it was sent). Unknown pixels are ignored."""
    if not opens:
        return _nothing()
    if conn.dialect.name == "postgresql":
        result = await conn.exec_driver_sql(_POSTGRES, _postgres_arguments(opens))
        return _postgres_recorded(list(result.all()))
    await conn.exec_driver_sql(_SQLITE_SCRATCH)
    await conn.exec_driver_sql(_SQLITE_JUDGE, _sqlite_arguments(opens))
    bells = list((await conn.exec_driver_sql(_SQLITE_BELLS)).all())
    for statement in _sqlite_writes(bells):
        await conn.exec_driver_sql(statement)
    return _sqlite_recorded(bells)


async def record_opens_asyncpg(conn: Any, opens: Sequence[Open]) -> Recorded:
    """`record_opens` on an asyncpg connection in autocommit: the batch is one statement,
    committed when it returns."""
    if not opens:
        return _nothing()
    return _postgres_recorded(await conn.fetch(_POSTGRES, *_postgres_arguments(opens)))


def _numbered_verdicts(opens: Sequence[Open]) -> tuple[list[tuple[Any, ...]], list[int]]:
    """The batch's distinct verdicts (everything in an open but its pixel and time), and
    each open's verdict by number, from 1: a batch has few."""
    verdicts: dict[tuple[Any, ...], int] = {}
    numbers: list[int] = []
    for open_ in opens:
        verdict = open_[2:]
        number = verdicts.get(verdict)
        if number is None:
            number = verdicts[verdict] = len(verdicts) + 1
        numbers.append(number)
    return list(verdicts), numbers


def _micros(at: dt.datetime) -> int:
    """Microseconds since the epoch. The float's error is well under half a microsecond,
    so rounding gives the exact count."""
    return round(at.timestamp() * 1_000_000)


def _verdict_counts(rows: Sequence[Any]) -> Counter[str]:
    """The human, proxy and machine counts every row of a batch's result carries."""
    counts: Counter[str] = Counter()
    if rows:
        counted = (ReadConfidence.HUMAN, ReadConfidence.PROXY, ReadConfidence.MACHINE)
        for confidence, count in zip(counted, rows[0][4:7], strict=True):
            if count:
                counts[confidence] = count
    return counts


def _postgres_arguments(opens: Sequence[Open]) -> tuple[Any, ...]:
    """The statement's arguments: pixel ids, times and verdict numbers as texts, and the
    distinct verdicts as arrays."""
    verdicts, numbers = _numbered_verdicts(opens)
    confidence, network, reason, within, fast_network = zip(*verdicts, strict=True)
    return (
        # Pixel ids are hex (pixel/endpoint.py verified them): no spaces in them.
        " ".join([open_.pixel_id for open_ in opens]),
        " ".join([str(_micros(open_.at)) for open_ in opens]),
        " ".join(map(str, numbers)),
        [str(value) for value in confidence],
        list(network),
        list(reason),
        list(within),
        list(fast_network),
    )


def _postgres_recorded(rows: Sequence[Any]) -> Recorded:
    changes = [
        DeliveryChanged(account_id=row[1], delivery_id=row[0], task_id=row[2], comment_id=row[3])
        for row in rows
    ]
    return Recorded(changes, _verdict_counts(rows))


def _uuid(value: Any) -> uuid.UUID:
    """A UUID as the driver returns it (asyncpg's own type, or SQLite's 32 hex digits)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
