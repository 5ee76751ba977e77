"""The delivery log (every delivery of the account, filtered, newest first) and delivery
rates, for the API and the export (web/export.py), which share the filter's rules here."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from common.cursors import InvalidCursor
from common.domain import Channel, DeliveryState, Plan, ReadConfidence
from db import accounts as db_accounts
from db import delivery_log as db_log
from db import stats as db_stats
from db import tasks as db_tasks
from db.accounts import Viewer
from db.records import DeliveryRow
from domain.text import one_line, shown
from resolvers.context import Info, Services, history_cutoff_of
from resolvers.errors import bad_input
from resolvers.queries import page_size

MAX_ADDRESS = 2000
# A chart or a table of more buckets than this is not read by anyone; asking for it is
# most likely a mistake (an hourly year), and it would cost a large answer.
MAX_BUCKETS = 1000


def _aware(value: dt.datetime | None, name: str) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise bad_input(f"'{name}' needs a time zone, e.g. 2026-12-03T07:00:00Z.", field=name)
    return value


def log_filter(
    *,
    state: DeliveryState | None = None,
    channel: Channel | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    address: str | None = None,
    task_id: str | None = None,
    read_confidence: ReadConfidence | None = None,
) -> db_log.DeliveryFilter:
    """The filter, checked: BAD_USER_INPUT naming the field that is wrong."""
    since, until = _aware(since, "since"), _aware(until, "until")
    if since is not None and until is not None and until < since:
        raise bad_input("'until' must not be before 'since'.", field="until")
    if address is not None:
        address = one_line(address, "address")
        if not address or len(address) > MAX_ADDRESS:
            raise bad_input(f"'address' must be 1 to {MAX_ADDRESS} characters.", field="address")
    parsed_task: uuid.UUID | None = None
    if task_id is not None:
        try:
            parsed_task = uuid.UUID(str(task_id))
        except ValueError:
            raise bad_input(f"'{shown(task_id)}' is not a valid task id.", field="taskId") from None
    return db_log.DeliveryFilter(
        state=state,
        channel=channel,
        since=since,
        until=until,
        address=address,
        task_id=parsed_task,
        read_confidence=read_confidence,
    )


async def deliveries(
    info: Info, wanted: db_log.DeliveryFilter, first: int | None, after: str | None
) -> db_tasks.Page[DeliveryRow]:
    """A page of the log; PLAN_REQUIRED without tracking, as every delivery read."""
    viewer = info.context.require_viewer()
    await info.context.require_tracking()
    cutoff = await info.context.history_cutoff()
    try:
        async with info.context.db.read() as conn:
            return await db_log.page(
                conn, viewer.account_id, wanted, cutoff=cutoff, first=page_size(first), after=after
            )
    except InvalidCursor as error:
        raise bad_input(str(error), field="after") from None


async def export_cutoff(services: Services, viewer: Viewer) -> dt.datetime:
    """The oldest notification time the viewer's plan shows; PLAN_REQUIRED without
    tracking (the export has no GraphQL context)."""
    async with services.db.read() as conn:
        account = await db_accounts.get_account(conn, viewer.account_id)
    return history_cutoff_of(services.settings, Plan(account.plan))


# --- Rates ---


@dataclass
class Rates:
    """One bucket's (or a whole range's) counts of one channel."""

    start: dt.datetime
    sent: int = 0
    failed: int = 0
    read_by_people: int = 0
    read_by_machines: int = 0
    bounced: int = 0

    def add(self, outcome: db_stats.Outcome, deliveries: int) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + deliveries)


@dataclass
class ChannelRates:
    channel: Channel
    total: Rates
    buckets: list[Rates] = field(default_factory=list)


@dataclass(frozen=True)
class Stats:
    since: dt.datetime
    until: dt.datetime
    bucket: db_stats.Bucket
    channels: Sequence[ChannelRates]


def _floor(at: dt.datetime, bucket: db_stats.Bucket) -> dt.datetime:
    utc = at.astimezone(dt.UTC)
    hour = utc.replace(minute=0, second=0, microsecond=0)
    return hour if bucket is db_stats.Bucket.HOUR else hour.replace(hour=0)


def buckets_between(
    since: dt.datetime, until: dt.datetime, bucket: db_stats.Bucket
) -> tuple[dt.datetime, dt.datetime, int]:
    """The range widened to whole UTC buckets, and how many buckets that is;
    BAD_USER_INPUT for a range that is empty, reversed or too long."""
    _aware(since, "since")
    _aware(until, "until")
    if until <= since:
        raise bad_input("'until' must be after 'since'.", field="until")
    start = _floor(since, bucket)
    step = dt.timedelta(seconds=bucket.seconds)
    end = _floor(until, bucket)
    if end < until:
        end += step
    count = int((end - start) / step)
    if count > MAX_BUCKETS:
        raise bad_input(
            f"That is {count} {bucket.value.lower()}s; ask for at most {MAX_BUCKETS} "
            "(a shorter range, or DAY buckets).",
            field="until",
        )
    return start, end, count


async def delivery_stats(
    info: Info, since: dt.datetime, until: dt.datetime, bucket: db_stats.Bucket
) -> Stats:
    viewer = info.context.require_viewer()
    start, end, count = buckets_between(since, until, bucket)
    await info.context.require_tracking()
    cutoff = await info.context.history_cutoff()
    async with info.context.db.read() as conn:
        counts = await db_stats.delivery_counts(
            conn, viewer.account_id, since=start, until=end, bucket=bucket, cutoff=cutoff
        )
    step = dt.timedelta(seconds=bucket.seconds)
    series: dict[str, ChannelRates] = {}
    by_start: dict[str, dict[dt.datetime, Rates]] = defaultdict(dict)
    for found in counts:
        if found.channel not in series:
            buckets = [Rates(start=start + i * step) for i in range(count)]
            series[found.channel] = ChannelRates(Channel(found.channel), Rates(start), buckets)
            by_start[found.channel] = {rates.start: rates for rates in buckets}
        by_start[found.channel][found.start].add(found.outcome, found.deliveries)
        series[found.channel].total.add(found.outcome, found.deliveries)
    ordered = [series[c.value] for c in Channel if c.value in series]
    return Stats(since=start, until=end, bucket=bucket, channels=ordered)
