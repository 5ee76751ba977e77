"""(b) Pixel hit → subscriber event latency with 200 websocket subscribers, and the
fan-out ceiling, against a naive strawberry subscription.

    .venv/bin/python -m benchmarks.fanout_latency [--subscribers 200] [--seconds 10]

Both servers run in a process of their own, one after the other, with the same
selection (a dashboard's: cursor, task, comment, the delivery's id, address, state,
read time and opens, the icon's state and counts):

  baseline: benchmarks/naive_fanout_app.py: strawberry over broadcaster's memory
            backend, the pixel publishing straight away (no database), every subscriber
            executing and serialising its own result;
  Beacon:   `python main.py serve` on a fresh PostgreSQL database (BROADCAST_URL
            memory://): the pixel's open is committed, the live feed reads it from the
            event log once, and every subscriber gets the same serialised update.

This process holds the 200 websockets (graphql-transport-ws) and sends the pixel hits,
each for a delivery not opened before, at a steady rate: 20 hits/s x 200 subscribers =
4,000 messages/s. A message's latency is from just before its hit was sent to its
arrival, on one clock. Then the ceiling: hits as fast as the server takes them, and the
messages/s the subscribers receive. Targets: p99 <= 50 ms at 4,000 msg/s, and a ceiling
of at least 20,000 msg/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets

from benchmarks.support import (
    SECRET_KEY,
    beacon_command,
    beacon_env,
    cpu_seconds,
    free_port,
    fresh_postgres,
    pixel_paths,
    seed_comments,
    serving,
)
from common.tokens import PIXEL, sign
from db.engine import Database

SELECTION = """
subscription Watch($taskId: ID) {
  deliveryUpdated(taskId: $taskId) {
    cursor taskId commentId
    delivery { id address state readAt openCount }
    status { state total read }
  }
}
"""
TARGET_P99_MS = 50.0
TARGET_CEILING = 20_000.0
_ID = '"delivery":{"id":"'


@dataclass
class Received:
    """Arrival times of each delivery's update, one list entry per subscriber."""

    arrivals: dict[str, list[float]] = field(default_factory=dict)
    count: int = 0
    # Deliveries someone waits for: how many arrivals, and what to set then.
    _watched: dict[str, tuple[int, asyncio.Event]] = field(default_factory=dict)

    def note(self, raw: str, at: float) -> None:
        start = raw.find(_ID)
        if start < 0:
            return
        start += len(_ID)
        delivery_id = raw[start : start + 36]
        arrived = self.arrivals.setdefault(delivery_id, [])
        arrived.append(at)
        self.count += 1
        watched = self._watched.get(delivery_id)
        if watched is not None and len(arrived) >= watched[0]:
            watched[1].set()

    def all_arrived(self, delivery_id: str, subscribers: int) -> asyncio.Event:
        event = asyncio.Event()
        self._watched[delivery_id] = (subscribers, event)
        if len(self.arrivals.get(delivery_id, [])) >= subscribers:
            event.set()
        return event


async def subscriber(
    url: str, token: str, task_id: str, received: Received, ready: asyncio.Event
) -> None:
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], max_queue=None) as ws:  # type: ignore[list-item]
        init = {"authorization": f"Bearer {token}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        await ws.recv()
        payload = {"query": SELECTION, "variables": {"taskId": task_id}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        ready.set()
        async for raw in ws:
            received.note(str(raw), time.monotonic())


@dataclass
class Hitter:
    base_url: str
    paths: list[str]
    delivery_ids: list[str]
    sent: dict[str, float] = field(default_factory=dict)
    _next: int = 0

    def take(self) -> tuple[str, str]:
        number = self._next
        self._next += 1
        return self.paths[number], self.delivery_ids[number]

    async def hit(self, http: httpx.AsyncClient) -> None:
        path, delivery_id = self.take()
        self.sent[delivery_id] = time.monotonic()
        await http.get(self.base_url + path)

    async def at_rate(self, http: httpx.AsyncClient, rate: float, seconds: float) -> None:
        """Open loop: hits on a fixed schedule, whatever the answers take."""
        start = time.monotonic()
        pending = []
        for number in range(int(rate * seconds)):
            due = start + number / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            pending.append(asyncio.create_task(self.hit(http)))
        await asyncio.gather(*pending)

    async def flat_out(self, http: httpx.AsyncClient, seconds: float, concurrency: int) -> None:
        stop = time.monotonic() + seconds

        async def loop() -> None:
            while time.monotonic() < stop and self._next < len(self.paths):
                await self.hit(http)

        await asyncio.gather(*(loop() for _ in range(concurrency)))


@dataclass(frozen=True)
class Outcome:
    p50_ms: float
    p99_ms: float
    delivered: int
    expected: int
    ceiling: float
    cpu_per_message_us: float


def latencies(hitter: Hitter, received: Received, ids: Sequence[str]) -> list[float]:
    values = []
    for delivery_id in ids:
        sent = hitter.sent.get(delivery_id)
        for at in received.arrivals.get(delivery_id, []):
            if sent is not None:
                values.append((at - sent) * 1000)
    return values


async def measure(
    label: str, base_url: str, pid: int, token: str, task_id: str,
    paths: list[str], delivery_ids: list[str], subscribers: int, seconds: float,
) -> Outcome:  # fmt: skip
    received = Received()
    url = base_url.replace("http://", "ws://") + "/graphql"
    readies = [asyncio.Event() for _ in range(subscribers)]
    tasks = [
        asyncio.create_task(subscriber(url, token, task_id, received, ready)) for ready in readies
    ]
    hitter = Hitter(base_url, paths, delivery_ids)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        await asyncio.wait_for(asyncio.gather(*(ready.wait() for ready in readies)), 60)
        # Warm up, until every subscriber hears the hits.
        while True:
            await hitter.hit(http)
            warm = hitter.delivery_ids[hitter._next - 1]
            try:
                await asyncio.wait_for(received.all_arrived(warm, subscribers).wait(), 2)
                break
            except TimeoutError:
                continue

        # 4,000 messages/s: 20 hits/s to 200 subscribers
        rate = 4000 / subscribers
        first = hitter._next
        await hitter.at_rate(http, rate, seconds)
        measured = hitter.delivery_ids[first : hitter._next]
        expected = len(measured) * subscribers
        # Until every message arrived, or 10 s more (the rest are then lost).
        arrivals = [received.all_arrived(i, subscribers).wait() for i in measured]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*arrivals), 10)
        values = sorted(latencies(hitter, received, measured))
        delivered = len(values)

        # The ceiling: hits as fast as they are taken, messages/s as received
        before_count = received.count
        cpu_before = cpu_seconds([pid])
        started = time.monotonic()
        await hitter.flat_out(http, seconds=min(seconds, 5), concurrency=16)
        sent_window = time.monotonic() - started
        await asyncio.sleep(0.5)
        window = time.monotonic() - started
        messages = received.count - before_count
        ceiling = messages / window
        cpu = cpu_seconds([pid]) - cpu_before
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    p50 = statistics.median(values) if values else float("nan")
    p99 = values[int(len(values) * 0.99) - 1] if values else float("nan")
    outcome = Outcome(p50, p99, delivered, expected, ceiling, cpu / max(messages, 1) * 1e6)
    print(
        f"  {label:<9} at {rate * subscribers:.0f} msg/s: p50 {p50:6.1f} ms, p99 {p99:6.1f} ms"
        f" ({delivered}/{expected} delivered) | ceiling {ceiling:8.0f} msg/s"
        f" (hits for {sent_window:.1f} s) | server CPU {outcome.cpu_per_message_us:.0f} us/msg",
        flush=True,
    )
    return outcome


async def run_baseline(subscribers: int, seconds: float, hits: int) -> Outcome:
    pixel_ids = [uuid.uuid4().hex for _ in range(hits)]
    paths = [f"/p/{sign(p, SECRET_KEY.encode(), PIXEL)}.gif" for p in pixel_ids]
    delivery_ids = [str(uuid.UUID(p)) for p in pixel_ids]
    task_id = str(uuid.UUID(int=1))
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "benchmarks.naive_fanout_app:app",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
        # The same process settings as Beacon's (main.py): no per-subscriber compression.
        "--ws-per-message-deflate", "false",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="beacon-bench-") as directory:
        env = {"SECRET_KEY": SECRET_KEY, "NAIVE_TASK_ID": task_id, "PATH": "/usr/bin:/bin"}
        async with serving(command, env, port, Path(directory) / "naive.log") as server:
            return await measure(
                "baseline", server.base_url, server.pid, "", task_id,
                paths, delivery_ids, subscribers, seconds,
            )  # fmt: skip


async def run_beacon(subscribers: int, seconds: float, hits: int) -> Outcome:
    async with fresh_postgres() as url:
        db = Database(url)
        try:
            seeded = await seed_comments(db, comments=hits // 10 + 1, recipients=10)
        finally:
            await db.dispose()
        port = free_port()
        with tempfile.TemporaryDirectory(prefix="beacon-bench-") as directory:
            env = beacon_env(url, port, Path(directory) / "data", BROADCAST_URL="memory://")
            async with serving(
                beacon_command(), env, port, Path(directory) / "beacon.log"
            ) as server:
                return await measure(
                    "Beacon", server.base_url, server.pid, seeded.token, str(seeded.task_id),
                    pixel_paths(seeded.pixel_ids), [str(d) for d in seeded.delivery_ids],
                    subscribers, seconds,
                )  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    hits = 20_000
    base = await run_baseline(args.subscribers, args.seconds, hits)
    ours = await run_beacon(args.subscribers, args.seconds, hits)
    print(
        f"(b) p99 {ours.p99_ms:.1f} ms (target <= {TARGET_P99_MS:g}: "
        f"{'met' if ours.p99_ms <= TARGET_P99_MS else 'MISSED'}) vs naive {base.p99_ms:.1f} ms;"
        f" p50 {ours.p50_ms:.1f} vs {base.p50_ms:.1f} ms"
    )
    print(
        f"(b) ceiling {ours.ceiling:.0f} msg/s (target >= {TARGET_CEILING:.0f}: "
        f"{'met' if ours.ceiling >= TARGET_CEILING else 'MISSED'}) vs naive {base.ceiling:.0f}"
        f" = {ours.ceiling / base.ceiling:.2f}x; p99 ratio naive/Beacon"
        f" {base.p99_ms / ours.p99_ms:.2f}x"
    )


if __name__ == "__main__":
    asyncio.run(main())
