"""Status webhooks: events/s delivered to a local receiver by the worker's dispatcher,
against a bare httpx loop POSTing the same bodies to the same receiver in the same run
(target >= 0.7x), and the p99 from a status change's commit to its receipt.

    .venv/bin/python -m benchmarks.webhook_throughput [--db sqlite|postgres] [--events N]

Both sides send one endpoint's events one after the other (ordering allows no more); the
dispatcher also signs each, and records the attempts in the database.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time

import httpx
from starlette.types import Receive, Scope, Send

from benchmarks.support import fresh_database, seed_comments
from common.domain import DeliveryState
from common.settings import Settings
from db import webhook_endpoints as db_endpoints
from db.engine import Database
from db.tables import deliveries
from domain.webhook_events import new_secret
from sending.webhook_events import WebhookDispatcher
from tests.support.providers.server import LocalServer


class Receiver:
    """Counts requests and notes when each webhook id arrived; answers 200 at once."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.arrived: dict[str, float] = {}
        self.count = 0
        self.changed = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        webhook_id = headers.get(b"webhook-id", b"").decode()
        if webhook_id:
            self.bodies.append(body)
            self.arrived.setdefault(webhook_id, time.perf_counter())
        self.count += 1
        self.changed.set()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def drain(dispatcher: WebhookDispatcher, receiver: Receiver, want: int) -> None:
    while len(receiver.arrived) < want:
        started = await dispatcher.run_once()
        await dispatcher.wait_idle()
        if started == 0:
            await asyncio.sleep(0.005)


async def bare_loop(url: str, bodies: list[bytes], receiver: Receiver) -> float:
    """The same bodies, one after the other, with one httpx client: events/s."""
    async with httpx.AsyncClient(timeout=10) as client:
        began = time.perf_counter()
        for body in bodies:
            response = await client.post(url, content=body)
            assert response.status_code == 200
        return len(bodies) / (time.perf_counter() - began)


async def run(kind: str, events: int, latency_samples: int) -> None:
    with tempfile.TemporaryDirectory(prefix="beacon-bench-") as data_dir:
        await _run(kind, events, latency_samples, data_dir)


async def _run(kind: str, events: int, latency_samples: int, data_dir: str) -> None:
    async with fresh_database(kind) as url:
        db = Database(url)
        receiver = Receiver()
        try:
            seeded = await seed_comments(
                db, comments=events + latency_samples, recipients=1, state=DeliveryState.SENT
            )
            async with LocalServer(receiver) as server:
                hook = f"{server.url}/hook"
                async with db.write() as conn:
                    await db_endpoints.create_endpoint(
                        conn,
                        account_id=seeded.account_id,
                        url=hook,
                        event_types=["READ"],
                        channels=[],
                        secret=new_secret(),
                        now=dt.datetime.now(dt.UTC),
                    )
                settings = Settings.from_env(
                    {"DATA_DIR": data_dir, "SECRET_KEY": "bench", "ALLOW_PRIVATE_NETWORKS": "1"}
                )
                dispatcher = WebhookDispatcher(
                    db, settings, owner="bench", clock=lambda: dt.datetime.now(dt.UTC)
                )
                batch, trickle = (
                    seeded.delivery_ids[:events],
                    seeded.delivery_ids[events:],
                )
                # Throughput: `events` status changes in one transaction, then sent.
                async with db.write() as conn:
                    await conn.execute(
                        deliveries.update()
                        .where(deliveries.c.id.in_(batch))
                        .values(state="READ", read_at=dt.datetime.now(dt.UTC))
                    )
                began = time.perf_counter()
                await drain(dispatcher, receiver, events)
                ours = events / (time.perf_counter() - began)
                bodies = list(receiver.bodies)
                bare = await bare_loop(hook, bodies, receiver)

                # Latency: one change at a time, the dispatcher woken as a mutation wakes
                # the worker; from the commit to the receipt.
                latencies: list[float] = []
                for delivery_id in trickle:
                    seen = len(receiver.arrived)
                    async with db.write() as conn:
                        await conn.execute(
                            deliveries.update()
                            .where(deliveries.c.id == delivery_id)
                            .values(state="READ", read_at=dt.datetime.now(dt.UTC))
                        )
                    committed = time.perf_counter()
                    await drain(dispatcher, receiver, seen + 1)
                    newest = max(receiver.arrived.values())
                    latencies.append((newest - committed) * 1000)
                await dispatcher.aclose()
        finally:
            await db.dispose()
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(f"database: {kind}, events: {events}")
    print(f"dispatcher: {ours:,.0f} events/s; bare httpx loop: {bare:,.0f} events/s")
    print(f"ratio: {ours / bare:.2f}x (target >= 0.7x)")
    print(
        f"status change -> receipt ({latency_samples} one at a time): "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--latency-samples", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.db, args.events, args.latency_samples))


if __name__ == "__main__":
    main()
