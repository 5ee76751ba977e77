"""Status webhooks: events/s delivered to a local receiver by the worker's dispatcher,
against a bare httpx loop POSTing the same bodies to the same receiver in the same run
(target >= 0.7x), and the p99 from a status change's commit to its receipt.

    .venv/bin/python -m benchmarks.webhook_throughput [--db sqlite|postgres] [--events N]
                                                      [--rounds R]

Both sides send one endpoint's events one after the other (ordering allows no more); the
dispatcher also signs each, and records the attempts in the database.

On a 2-core VM one side's speed drifts by ±20 % from one second to the next, so a single
dispatcher-then-bare comparison says more about when each ran than about either. The
events are sent in R rounds instead, the two sides taking turns to go first (the bare
loop sends the bodies the dispatcher sent in the round before), after a warm-up round
that is not counted (connections, compiled statements, the tables' statistics). The
ratio is of the totals; the per-round ratios show the spread.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass

import httpx
from starlette.types import Receive, Scope, Send

from benchmarks.support import analyze, fresh_database, seed_comments
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
    # A dispatcher that fails (it logs why) would leave this waiting for ever.
    async with asyncio.timeout(120):
        while len(receiver.arrived) < want:
            # As the worker does each round (sending/worker.py), without messages.
            async with dispatcher.db.write() as conn:
                jobs = await dispatcher.claim(conn)
            started = dispatcher.start(jobs)
            await dispatcher.wait_idle()
            if started == 0:
                await asyncio.sleep(0.005)


async def bare_loop(url: str, bodies: list[bytes]) -> float:
    """The same bodies, one after the other, with one httpx client: seconds taken."""
    async with httpx.AsyncClient(timeout=10) as client:
        began = time.perf_counter()
        for body in bodies:
            response = await client.post(url, content=body)
            assert response.status_code == 200
        return time.perf_counter() - began


async def mark_read(db: Database, delivery_ids: list[uuid.UUID]) -> None:
    """Status changes in one transaction: the trigger writes one event for each."""
    async with db.write() as conn:
        await conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_(delivery_ids))
            .values(state="READ", read_at=dt.datetime.now(dt.UTC))
        )


@dataclass
class Round:
    events: int
    dispatcher_seconds: float
    bare_seconds: float

    @property
    def ratio(self) -> float:
        return self.bare_seconds / self.dispatcher_seconds


async def dispatcher_round(
    db: Database,
    dispatcher: WebhookDispatcher,
    receiver: Receiver,
    delivery_ids: list[uuid.UUID],
) -> tuple[float, list[bytes]]:
    """Seconds the dispatcher took to deliver these deliveries' events, and the bodies."""
    seen = len(receiver.bodies)
    await mark_read(db, delivery_ids)
    began = time.perf_counter()
    await drain(dispatcher, receiver, len(receiver.arrived) + len(delivery_ids))
    return time.perf_counter() - began, receiver.bodies[seen:]


async def run(kind: str, events: int, rounds: int, latency_samples: int) -> None:
    with tempfile.TemporaryDirectory(prefix="beacon-bench-") as data_dir:
        await _run(kind, events, rounds, latency_samples, data_dir)


async def _run(kind: str, events: int, rounds: int, latency_samples: int, data_dir: str) -> None:
    per_round = events // rounds
    warm_up = min(per_round, 200)
    async with fresh_database(kind) as url:
        db = Database(url)
        receiver = Receiver()
        try:
            seeded = await seed_comments(
                db,
                comments=warm_up + per_round * rounds + latency_samples,
                recipients=1,
                state=DeliveryState.SENT,
            )
            ids = seeded.delivery_ids
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
                _, previous = await dispatcher_round(db, dispatcher, receiver, ids[:warm_up])
                await bare_loop(hook, previous)
                # Statistics for the webhook tables, which were empty when the seeding
                # analysed: without them PostgreSQL checks each attempt's foreign key
                # by scanning every event (a plan made for an empty table), and each
                # round is slower than the one before. Autovacuum analyses a table
                # within a minute of such growth; a 15-second run must do it itself.
                await analyze(db)
                measured: list[Round] = []
                for number in range(rounds):
                    start = warm_up + number * per_round
                    batch = ids[start : start + per_round]
                    if number % 2 == 0:
                        ours, previous = await dispatcher_round(db, dispatcher, receiver, batch)
                        bare = await bare_loop(hook, previous)
                    else:
                        bare = await bare_loop(hook, previous)
                        ours, previous = await dispatcher_round(db, dispatcher, receiver, batch)
                    measured.append(Round(len(batch), ours, bare))

                # Latency: one change at a time, the dispatcher woken as a mutation wakes
                # the worker; from the commit to the receipt.
                latencies: list[float] = []
                for delivery_id in ids[warm_up + per_round * rounds :]:
                    seen = len(receiver.arrived)
                    await mark_read(db, [delivery_id])
                    committed = time.perf_counter()
                    await drain(dispatcher, receiver, seen + 1)
                    newest = max(receiver.arrived.values())
                    latencies.append((newest - committed) * 1000)
                await dispatcher.aclose()
        finally:
            await db.dispose()
    sent = sum(r.events for r in measured)
    ours_rate = sent / sum(r.dispatcher_seconds for r in measured)
    bare_rate = sent / sum(r.bare_seconds for r in measured)
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(f"database: {kind}, events: {sent} in {rounds} rounds (+{warm_up} warm-up)")
    print(f"dispatcher: {ours_rate:,.0f} events/s; bare httpx loop: {bare_rate:,.0f} events/s")
    print(f"ratio: {ours_rate / bare_rate:.2f}x (target >= 0.7x)")
    spread = ", ".join(f"{r.ratio:.2f}" for r in measured)
    print(f"per round (dispatcher first in rounds 1, 3, ...): {spread}")
    print(
        f"status change -> receipt ({latency_samples} one at a time): "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--latency-samples", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.db, args.events, args.rounds, args.latency_samples))


if __name__ == "__main__":
    main()
