"""GET /metrics: Prometheus metrics, with the send queue read from the database at
scrape time (any node can answer for the shared queue)."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from common.metrics import SEND_QUEUE_JOBS, SEND_QUEUE_OLDEST_AGE
from common.time import utcnow
from db.engine import Database
from db.queue_stats import queue_stats
from web.health import metrics as render_metrics

log = logging.getLogger(__name__)

# A scrape must answer even when the database does not: then the queue figures are the
# last ones read.
QUERY_TIMEOUT_SECONDS = 2.0


async def refresh_queue_metrics(db: Database) -> None:
    now = utcnow()
    async with asyncio.timeout(QUERY_TIMEOUT_SECONDS), db.read() as conn:
        stats = await queue_stats(conn, now)
    SEND_QUEUE_JOBS.labels("due").set(stats.due)
    SEND_QUEUE_JOBS.labels("leased").set(stats.leased)
    SEND_QUEUE_JOBS.labels("scheduled").set(stats.scheduled)
    oldest = (now - stats.oldest_due).total_seconds() if stats.oldest_due is not None else 0.0
    SEND_QUEUE_OLDEST_AGE.set(max(oldest, 0.0))


def metrics_route(db: Database) -> Route:
    async def metrics(request: Request) -> Response:
        try:
            await refresh_queue_metrics(db)
        except Exception as error:
            log.warning("metrics: could not read the send queue: %s", type(error).__name__)
        return await render_metrics(request)

    return Route("/metrics", metrics)
