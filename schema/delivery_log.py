"""The delivery log and delivery rates in the schema, as a mixin that Query
(schema/operations.py) inherits."""

from __future__ import annotations

import datetime as dt

import strawberry

from common import domain
from common.cursors import encode_cursor
from db.stats import Bucket
from resolvers import delivery_log
from resolvers.context import Info
from schema.types import Connection, Delivery, Edge, connection_of

strawberry.enum(Bucket, name="RateBucket", description="Hours or days, in UTC.")


@strawberry.input(description="Which deliveries the log shows; every field given must match.")
class DeliveryLogFilter:
    state: domain.DeliveryState | None = None
    channel: domain.Channel | None = None
    since: dt.datetime | None = strawberry.field(
        default=None, description="Queued at or after this time."
    )
    until: dt.datetime | None = strawberry.field(
        default=None, description="Queued before this time."
    )
    address: str | None = strawberry.field(default=None, description="The exact address.")
    task_id: strawberry.ID | None = None
    read_confidence: domain.ReadConfidence | None = None


@strawberry.type(description="How many deliveries of one channel did what in one period.")
class Rates:
    start: dt.datetime = strawberry.field(description="The bucket's first instant (UTC).")
    sent: int
    failed: int = strawberry.field(description="Failed without being sent.")
    read_by_people: int = strawberry.field(
        description="Read, by a HUMAN or PROXY open, or by the messenger's read report."
    )
    read_by_machines: int = strawberry.field(
        description="Opened only by machines (MACHINE: privacy prefetch, scanners)."
    )
    bounced: int = strawberry.field(description="Failed after being sent (a bounce).")

    @classmethod
    def of(cls, rates: delivery_log.Rates) -> Rates:
        return cls(
            start=rates.start,
            sent=rates.sent,
            failed=rates.failed,
            read_by_people=rates.read_by_people,
            read_by_machines=rates.read_by_machines,
            bounced=rates.bounced,
        )


@strawberry.type
class ChannelRates:
    channel: domain.Channel
    total: Rates = strawberry.field(description="The whole range's counts.")
    buckets: list[Rates] = strawberry.field(description="Every bucket, oldest first.")


@strawberry.type
class DeliveryStats:
    since: dt.datetime = strawberry.field(description="`since` rounded down to a bucket.")
    until: dt.datetime = strawberry.field(description="`until` rounded up to a bucket.")
    bucket: Bucket
    channels: list[ChannelRates] = strawberry.field(
        description="The channels with anything to count, in the Channel enum's order."
    )


async def _deliveries(
    info: Info,
    filter: DeliveryLogFilter | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Connection[Delivery]:
    given = filter or DeliveryLogFilter()
    wanted = delivery_log.log_filter(
        state=given.state,
        channel=given.channel,
        since=given.since,
        until=given.until,
        address=given.address,
        task_id=given.task_id,
        read_confidence=given.read_confidence,
    )
    page = await delivery_log.deliveries(info, wanted, first, after)
    edges = [
        Edge(node=Delivery(row=row), cursor=encode_cursor(row.queued_at, row.id))
        for row in page.rows
    ]
    return connection_of(edges, page.has_next)


async def _delivery_stats(
    info: Info, since: dt.datetime, until: dt.datetime, bucket: Bucket = Bucket.DAY
) -> DeliveryStats:
    stats = await delivery_log.delivery_stats(info, since, until, bucket)
    return DeliveryStats(
        since=stats.since,
        until=stats.until,
        bucket=stats.bucket,
        channels=[
            ChannelRates(
                channel=series.channel,
                total=Rates.of(series.total),
                buckets=[Rates.of(rates) for rates in series.buckets],
            )
            for series in stats.channels
        ],
    )


@strawberry.type
class DeliveryLogQueries:
    deliveries: Connection[Delivery] = strawberry.field(
        resolver=_deliveries,
        description="Every delivery of the account, newest first (by queuedAt), within the "
        "plan's history. GET /export/deliveries.ndjson or .csv takes the same filter.",
    )
    delivery_stats: DeliveryStats = strawberry.field(
        resolver=_delivery_stats,
        description="Per channel and hour or day (UTC): deliveries sent, failed, read by "
        "people and by machines, bounced. Each is counted when it happened; deliveries "
        "older than the plan's history are not counted. At most 1000 buckets.",
    )
