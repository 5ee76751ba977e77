"""Prometheus metrics, defined once per process. GET /metrics exposes them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SENDS = Counter(
    "beacon_sends_total",
    "Delivery attempts by channel and result (accepted, transient, permanent).",
    ["channel", "result"],
)
PIXEL_HITS = Counter(
    "beacon_pixel_hits_total",
    "Pixel requests by outcome (recorded, buffered, invalid).",
    ["outcome"],
)
PIXEL_OPENS = Counter(
    "beacon_pixel_opens_total",
    "Opens recorded on deliveries, by read confidence (HUMAN, PROXY, MACHINE).",
    ["confidence"],
)
PIXEL_OPENS_DROPPED = Counter(
    "beacon_pixel_opens_dropped_total",
    "Opens lost because the database was unreachable and the buffer was full.",
)
PIXEL_BUFFERED = Gauge(
    "beacon_pixel_opens_buffered",
    "Opens waiting in memory for the database to come back.",
)
PIXEL_UNCOMMITTED = Gauge(
    "beacon_pixel_opens_uncommitted",
    "Opens answered and not yet committed (or buffered): the group commit's backlog.",
)
CALLBACKS = Counter(
    "beacon_provider_reports_total",
    "Provider status reports by channel and outcome (applied, duplicate, unknown, forged).",
    ["channel", "outcome"],
)
BROADCAST_RECONNECTS = Counter(
    "beacon_broadcast_reconnects_total",
    "Times the broadcast connection (Redis, PostgreSQL) was lost and opened again.",
    ["backend"],
)
WEBSOCKETS_OPEN = Gauge(
    "beacon_websocket_connections",
    "Open GraphQL websocket connections.",
)
SUBSCRIPTIONS_ACTIVE = Gauge(
    "beacon_subscriptions_active",
    "Running deliveryUpdated subscriptions.",
)
SEND_QUEUE_JOBS = Gauge(
    "beacon_send_queue_jobs",
    "Jobs in the send queue: due (waiting for a worker), leased (being sent), "
    "scheduled (a retry or a rate limit later). Read from the database at scrape time.",
    ["state"],
)
SEND_QUEUE_OLDEST_AGE = Gauge(
    "beacon_send_queue_oldest_job_age_seconds",
    "How long the oldest due, unleased job has been waiting for a worker (0 if none).",
)
LIVE_MESSAGES = Counter(
    "beacon_live_messages_total",
    "deliveryUpdated messages by how they were made: executed for the subscriber, or "
    "shared (the same serialised result another subscriber's execution made).",
    ["way"],
)
PIXEL_BATCH = Histogram(
    "beacon_pixel_commit_opens",
    "Opens per pixel group commit (one transaction each).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048),
)
PIXEL_COMMIT_SECONDS = Histogram(
    "beacon_pixel_commit_seconds",
    "How long a pixel group commit took, from handing its batch to a connection (a new "
    "one connects first) to the durable commit, the write-ahead-log flush included.",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
REQUESTS_LIMITED = Counter(
    "beacon_requests_limited_total",
    "Connections, requests and websockets refused or closed by a request limit "
    "(docs/adr/0015-request-limits.md), by limit.",
    ["limit"],
)
