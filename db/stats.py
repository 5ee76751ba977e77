"""Delivery rates: how many deliveries of an account were sent, failed, read or bounced
in each hour or day (UTC), per channel.

Each outcome is counted at its own time: sent at `sent_at`; failed (never sent) and
bounced (failed after it was sent: a bounce, a provider's late "failed") at
`failed_at`; read at `read_at`. A read counts for people when the best open was HUMAN
or PROXY, or when no pixel judged it (a messenger's read report, markRead); deliveries
whose opens were all MACHINE count for machines, at `read_at` where the account counts
machine opens as reads and otherwise at `sent_at` (the delivery keeps no time of an open
that did not count; machine opens come seconds after sending).

Only deliveries inside the plan's history window are counted, as everywhere, which also
bounds the scan: `ix_deliveries_account_id_queued_at` (0011) finds them.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from common.domain import DeliveryState, ReadConfidence
from db.tables import deliveries


class Bucket(enum.StrEnum):
    HOUR = "HOUR"
    DAY = "DAY"

    @property
    def seconds(self) -> int:
        return 3600 if self is Bucket.HOUR else 86400


class Outcome(enum.StrEnum):
    SENT = "sent"
    FAILED = "failed"
    READ_BY_PEOPLE = "read_by_people"
    READ_BY_MACHINES = "read_by_machines"
    BOUNCED = "bounced"


@dataclass(frozen=True)
class Count:
    start: dt.datetime  # the bucket's first instant, UTC
    channel: str
    outcome: Outcome
    deliveries: int


def _epoch(column: Any, dialect: str) -> Any:
    """Seconds since 1970 of a UTC timestamp column, as an integer."""
    if dialect == "sqlite":
        return sa.cast(sa.func.strftime("%s", column), sa.Integer)
    return sa.cast(sa.func.floor(sa.extract("epoch", column)), sa.BigInteger)


_PEOPLE = (ReadConfidence.HUMAN.value, ReadConfidence.PROXY.value)
_MACHINE = ReadConfidence.MACHINE.value


def _outcomes() -> list[tuple[Outcome, Any, Any]]:
    """(outcome, the column that times it, which deliveries have it)."""
    c = deliveries.c
    return [
        (Outcome.SENT, c.sent_at, c.sent_at.is_not(None)),
        (
            Outcome.FAILED,
            c.failed_at,
            sa.and_(c.state == DeliveryState.FAILED.value, c.sent_at.is_(None)),
        ),
        (
            Outcome.BOUNCED,
            c.failed_at,
            sa.and_(c.state == DeliveryState.FAILED.value, c.sent_at.is_not(None)),
        ),
        (
            Outcome.READ_BY_PEOPLE,
            c.read_at,
            sa.and_(
                c.read_at.is_not(None),
                sa.or_(c.read_confidence.in_(_PEOPLE), c.read_confidence.is_(None)),
            ),
        ),
        (
            Outcome.READ_BY_MACHINES,
            sa.func.coalesce(c.read_at, c.sent_at),
            c.read_confidence == _MACHINE,
        ),
    ]


async def delivery_counts(
    conn: AsyncConnection,
    account_id: uuid.UUID,
    *,
    since: dt.datetime,
    until: dt.datetime,
    bucket: Bucket,
    cutoff: dt.datetime,
) -> Sequence[Count]:
    """The non-zero counts in [since, until), by bucket, channel and outcome. `since`
    is aligned to a bucket's start by the caller."""
    dialect = conn.dialect.name
    origin = int(since.timestamp())
    parts = []
    for outcome, at, which in _outcomes():
        index = (_epoch(at, dialect) - origin) // bucket.seconds
        parts.append(
            sa.select(
                sa.literal(outcome.value).label("outcome"),
                deliveries.c.channel.label("channel"),
                sa.cast(index, sa.Integer).label("bucket"),
            ).where(
                deliveries.c.account_id == account_id,
                # Nothing happens to a delivery before it is queued.
                deliveries.c.queued_at >= cutoff,
                deliveries.c.queued_at < until,
                which,
                at >= since,
                at < until,
            )
        )
    events = sa.union_all(*parts).subquery()
    query = sa.select(
        events.c.outcome, events.c.channel, events.c.bucket, sa.func.count().label("n")
    ).group_by(events.c.outcome, events.c.channel, events.c.bucket)
    return [
        Count(
            start=since + dt.timedelta(seconds=row.bucket * bucket.seconds),
            channel=row.channel,
            outcome=Outcome(row.outcome),
            deliveries=int(row.n),
        )
        for row in (await conn.execute(query)).all()
    ]
