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
bounds the scan: `ix_deliveries_account_id_queued_at` (0011) finds them, in one pass.
The query counts rows, so its time grows with the account's deliveries in the window
(benchmarks/delivery_log_at_scale.py times it); a rollup table is the step beyond.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections import Counter
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


_PEOPLE = {ReadConfidence.HUMAN.value, ReadConfidence.PROXY.value, None}
_MACHINE = ReadConfidence.MACHINE.value
_FAILED = DeliveryState.FAILED.value


def _outcomes(group: Any) -> list[tuple[Outcome, int | None]]:
    """What one group of deliveries (a row of `delivery_counts`' query) counts for: each
    outcome it had, with the bucket it had it in (None: outside the range)."""
    found: list[tuple[Outcome, int | None]] = []
    if group.sent:
        found.append((Outcome.SENT, group.sent_bucket))
    if group.state == _FAILED:
        found.append((Outcome.BOUNCED if group.sent else Outcome.FAILED, group.failed_bucket))
    if group.read and group.read_confidence in _PEOPLE:
        found.append((Outcome.READ_BY_PEOPLE, group.read_bucket))
    if group.read_confidence == _MACHINE:
        found.append(
            (Outcome.READ_BY_MACHINES, group.read_bucket if group.read else group.sent_bucket)
        )
    return found


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
    c = deliveries.c

    def bucket_of(column: Any) -> Any:
        index = sa.cast((_epoch(column, dialect) - origin) // bucket.seconds, sa.Integer)
        return sa.case(((column >= since) & (column < until), index))

    # One pass: the deliveries active in the range, grouped by what tells their outcomes
    # apart and the bucket of each of their times. The groups are few (a delivery's
    # times are close together), and each counts for its outcomes below.
    keys = [
        c.channel,
        c.state,
        c.read_confidence,
        c.sent_at.is_not(None).label("sent"),
        c.read_at.is_not(None).label("read"),
        bucket_of(c.sent_at).label("sent_bucket"),
        bucket_of(c.failed_at).label("failed_bucket"),
        bucket_of(c.read_at).label("read_bucket"),
    ]
    query = (
        sa.select(*keys, sa.func.count().label("n"))
        .where(
            c.account_id == account_id,
            # Nothing happens to a delivery before it is queued.
            c.queued_at >= cutoff,
            c.queued_at < until,
            sa.or_(*((at >= since) & (at < until) for at in (c.sent_at, c.failed_at, c.read_at))),
        )
        .group_by(*keys)
    )
    totals: Counter[tuple[int, str, Outcome]] = Counter()
    for group in (await conn.execute(query)).all():
        for outcome, index in _outcomes(group):
            if index is not None:
                totals[(index, group.channel, outcome)] += int(group.n)
    return [
        Count(
            start=since + dt.timedelta(seconds=index * bucket.seconds),
            channel=channel,
            outcome=outcome,
            deliveries=n,
        )
        for (index, channel, outcome), n in sorted(totals.items())
    ]
