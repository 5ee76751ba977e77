"""Prometheus metrics, defined once per process. GET /metrics exposes them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
PIXEL_OPENS_DROPPED = Counter(
    "beacon_pixel_opens_dropped_total",
    "Opens lost because the database was unreachable and the buffer was full.",
)
PIXEL_BUFFERED = Gauge(
    "beacon_pixel_opens_buffered",
    "Opens waiting in memory for the database to come back.",
)
