"""The delivery log: an account's deliveries across all its tasks, newest first, filtered,
read a page at a time by keyset (the API) or in batches (the export).

The order is (queued_at, id) descending, which `ix_deliveries_account_id_queued_at`
(migration 0011) serves for an account as it stands: a page reads about as many index
entries as it returns, whatever the account holds. Filters by address or state, whose
matches can be rare, have an index each that keeps the same order.

`queued_at` is set once, when the notification is written, and equals the
notification's time, so the plan's history window (`notified_at >= cutoff` elsewhere)
is a range on the same index here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

# Pages and cursors as the task and comment lists have them: (time, id), as text.
from common.cursors import decode_cursor
from common.domain import Channel, DeliveryState, ReadConfidence
from db.records import DeliveryRow
from db.tables import deliveries, notifications
from db.tasks import Page


@dataclass(frozen=True)
class DeliveryFilter:
    """Which deliveries the log shows; None: any. `since`/`until` bound `queued_at`
    (since inclusive, until exclusive)."""

    state: DeliveryState | None = None
    channel: Channel | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    address: str | None = None
    task_id: uuid.UUID | None = None
    read_confidence: ReadConfidence | None = None


# A delivery with its task and comment, as db/deliveries.py reads one.
_LOG = sa.select(
    deliveries,
    notifications.c.task_id,
    notifications.c.comment_id,
    notifications.c.created_at.label("notified_at"),
).join(notifications, notifications.c.id == deliveries.c.notification_id)


# What the export writes, in its order: rows read by position cost a fraction of rows
# read by name, which counts at a million rows.
EXPORTED = (
    deliveries.c.id,
    notifications.c.task_id,
    notifications.c.comment_id,
    deliveries.c.recipient_id,
    deliveries.c.channel,
    deliveries.c.address,
    deliveries.c.state,
    deliveries.c.attempts,
    deliveries.c.queued_at,
    deliveries.c.sent_at,
    deliveries.c.failed_at,
    deliveries.c.delivered_at,
    deliveries.c.read_at,
    deliveries.c.read_confidence,
    deliveries.c.open_count,
    deliveries.c.error_code,
    deliveries.c.error_message,
    deliveries.c.provider_message_id,
)
# A row of EXPORTED, typed by position: `Row._tuple()` gives the export its values
# without a copy (a record per row would cost it more than the rest of its work).
ExportedRow = Row[
    uuid.UUID,  # id
    uuid.UUID | None,  # task_id (None for an invitation's email)
    uuid.UUID | None,  # comment_id
    uuid.UUID,  # recipient_id
    str,  # channel
    str,  # address
    str,  # state
    int,  # attempts
    dt.datetime,  # queued_at
    dt.datetime | None,  # sent_at
    dt.datetime | None,  # failed_at
    dt.datetime | None,  # delivered_at
    dt.datetime | None,  # read_at
    str | None,  # read_confidence
    int,  # open_count
    str | None,  # error_code
    str | None,  # error_message
    str | None,  # provider_message_id
]


def _query(
    account_id: uuid.UUID,
    wanted: DeliveryFilter,
    cutoff: dt.datetime,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
    select: sa.Select[Any] = _LOG,
) -> sa.Select[Any]:
    since = max(cutoff, wanted.since) if wanted.since is not None else cutoff
    query = select.where(deliveries.c.account_id == account_id, deliveries.c.queued_at >= since)
    if wanted.until is not None:
        query = query.where(deliveries.c.queued_at < wanted.until)
    if wanted.state is not None:
        query = query.where(deliveries.c.state == wanted.state.value)
    if wanted.channel is not None:
        query = query.where(deliveries.c.channel == wanted.channel.value)
    if wanted.address is not None:
        query = query.where(deliveries.c.address == wanted.address)
    if wanted.task_id is not None:
        query = query.where(notifications.c.task_id == wanted.task_id)
    if wanted.read_confidence is not None:
        query = query.where(deliveries.c.read_confidence == wanted.read_confidence.value)
    if after is not None:
        query = query.where(sa.tuple_(deliveries.c.queued_at, deliveries.c.id) < after)
    return query.order_by(deliveries.c.queued_at.desc(), deliveries.c.id.desc()).limit(limit)


async def page(
    conn: AsyncConnection,
    account_id: uuid.UUID,
    wanted: DeliveryFilter,
    *,
    cutoff: dt.datetime,
    first: int,
    after: str | None,
) -> Page[DeliveryRow]:
    """The `first` deliveries after the cursor, newest first; `cutoff` is the oldest
    notification time the plan shows."""
    position = decode_cursor(after) if after is not None else None
    rows = (await conn.execute(_query(account_id, wanted, cutoff, position, first + 1))).all()
    return Page(rows=cast(list[DeliveryRow], rows[:first]), has_next=len(rows) > first)


async def batches(
    read: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
    account_id: uuid.UUID,
    wanted: DeliveryFilter,
    *,
    cutoff: dt.datetime,
    size: int,
) -> AsyncIterator[Sequence[ExportedRow]]:
    """Every delivery the filter matches, newest first, `size` at a time, as rows of
    EXPORTED. Each batch is its own short read (`read()` is `Database.read`), so an
    export of any length holds one batch in memory and no transaction open while the
    client reads."""
    exported = sa.select(*EXPORTED).join(
        notifications, notifications.c.id == deliveries.c.notification_id
    )
    position: tuple[dt.datetime, uuid.UUID] | None = None
    while True:
        async with read() as conn:
            query = _query(account_id, wanted, cutoff, position, size, exported)
            rows = cast(Sequence[ExportedRow], (await conn.execute(query)).all())
        if rows:
            yield rows
        if len(rows) < size:
            return
        position = (rows[-1].queued_at, rows[-1].id)
