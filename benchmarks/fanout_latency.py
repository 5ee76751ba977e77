"""(b) Pixel hit → subscriber event latency with 200 websocket subscribers, and the
fan-out ceiling, against a naive strawberry subscription.

    .venv/bin/python -m benchmarks.fanout_latency [--subscribers 200] [--seconds 10]

Both servers run in a process of their own, one after the other, with the same
selection (a dashboard's: cursor, task, comment, the delivery's id, address, state,
read time and opens, the icon's state and counts):

  baseline: benchmarks/naive_fanout_app.py: strawberry over broadcaster's memory
            backend, the pixel publishing straight away (no database), every subscriber
            executing and serialising its own result;
  Beacon:   `python main.py serve` on a fresh PostgreSQL database, settled after
            seeding as in (a) (BROADCAST_URL memory://): the pixel's open is committed,
            the live feed reads it from the event log once, and every subscriber gets
            the same serialised update. What the pixel commits took meanwhile is
            printed too (`beacon_pixel_commit_seconds`): a disk slow to flush shows
            there first.

This process holds the 200 websockets (graphql-transport-ws) and sends the pixel hits,
each for a delivery not opened before, at a steady rate: 20 hits/s x 200 subscribers =
4,000 messages/s. A message's latency is from just before its hit was sent to the
arrival of its bytes, on one clock. Then the ceiling: hits as fast as the server takes
them (16 at a time), and the messages/s the subscribers receive. Targets: p99 <= 50 ms
at 4,000 msg/s, and a ceiling of at least 20,000 msg/s.

The load generator shares the machine's cores with the server, so it is built to cost
little per message (benchmarks/lean_client.py, on uvloop): each socket's messages are
read and stamped in `data_received`, with no task, queue or frame object per message.
It prints its own CPU per message next to the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from benchmarks.lean_client import LeanHTTP, LeanWebSocket
from benchmarks.support import (
    SECRET_KEY,
    beacon_command,
    beacon_env,
    cpu_seconds,
    free_port,
    fresh_postgres,
    pixel_paths,
    seed_comments,
    server_metrics,
    serving,
    settle,
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
_ID = b'"delivery":{"id":"'
# Pixel connections of the load generator, and hits in flight at the ceiling.
_CONCURRENCY = 16
COMMITS = "beacon_pixel_commit_seconds"


@dataclass
class Received:
    """Arrival times of each delivery's update, one list entry per subscriber."""

    arrivals: dict[str, list[float]] = field(default_factory=dict)
    count: int = 0
    # Deliveries someone waits for: how many arrivals, and what to set then.
    _watched: dict[str, tuple[int, asyncio.Event]] = field(default_factory=dict)

    def note(self, raw: bytes, at: float) -> None:
        start = raw.find(_ID)
        if start < 0:
            return
        start += len(_ID)
        delivery_id = raw[start : start + 36].decode()
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


async def subscriber(url: str, token: str, task_id: str, received: Received) -> LeanWebSocket:
    """A subscribed websocket whose `next` messages go to `received` as they arrive."""
    ws = await LeanWebSocket.connect(url, "graphql-transport-ws")
    ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    ack = json.loads(await ws.recv())
    if ack.get("type") != "connection_ack":
        raise RuntimeError(f"not acknowledged: {ack}")
    ws.on_message(received.note)
    payload = {"query": SELECTION, "variables": {"taskId": task_id}}
    ws.send_json({"id": "1", "type": "subscribe", "payload": payload})
    return ws


@dataclass
class Hitter:
    """Pixel hits over keep-alive connections of its own (`connections`), each hit
    stamped just before it is sent."""

    connections: asyncio.Queue[LeanHTTP]
    paths: list[str]
    delivery_ids: list[str]
    sent: dict[str, float] = field(default_factory=dict)
    _next: int = 0

    @classmethod
    async def open(
        cls, base_url: str, paths: list[str], delivery_ids: list[str], connections: int
    ) -> Hitter:
        host, _, port = base_url.removeprefix("http://").partition(":")
        pool: asyncio.Queue[LeanHTTP] = asyncio.Queue()
        for _ in range(connections):
            pool.put_nowait(await LeanHTTP.connect(host, int(port)))
        return cls(pool, paths, delivery_ids)

    async def aclose(self) -> None:
        while not self.connections.empty():
            await self.connections.get_nowait().aclose()

    def take(self) -> tuple[str, str]:
        number = self._next
        self._next += 1
        return self.paths[number], self.delivery_ids[number]

    async def hit(self) -> None:
        path, delivery_id = self.take()
        # Stamped before waiting for a free connection: the wait counts as latency.
        self.sent[delivery_id] = time.monotonic()
        http = await self.connections.get()
        try:
            status = await http.get(path)
            if status != 200:
                raise RuntimeError(f"the pixel answered {status}")
        finally:
            self.connections.put_nowait(http)

    async def at_rate(self, rate: float, seconds: float) -> None:
        """Open loop: hits on a fixed schedule, whatever the answers take."""
        start = time.monotonic()
        pending = []
        for number in range(int(rate * seconds)):
            due = start + number / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            pending.append(asyncio.create_task(self.hit()))
        await asyncio.gather(*pending)

    async def flat_out(self, seconds: float, concurrency: int) -> None:
        stop = time.monotonic() + seconds

        async def loop() -> None:
            while time.monotonic() < stop and self._next < len(self.paths):
                await self.hit()

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


def commit_profile(before: dict[str, float], after: dict[str, float]) -> str:
    """What Beacon's pixel commits took between two scrapes of its /metrics: every open
    reaches the subscribers only after its durable commit, so a slow disk flush shows in
    the latency's tail."""
    count = after[f"{COMMITS}_count"] - before.get(f"{COMMITS}_count", 0)
    buckets = sorted(
        (float(key.split('le="')[1].rstrip('"}')), after[key] - before.get(key, 0))
        for key in after
        if key.startswith(f"{COMMITS}_bucket")
    )
    p99 = next(le for le, n in buckets if n >= 0.99 * count)
    slow = count - next(n for le, n in buckets if le >= TARGET_P99_MS / 1000)
    return (
        f"{count:.0f} pixel commits meanwhile: p99 <= {p99 * 1000:g} ms,"
        f" {slow:.0f} took over {TARGET_P99_MS:g} ms"
    )


async def measure(
    label: str, base_url: str, pid: int, token: str, task_id: str,
    paths: list[str], delivery_ids: list[str], subscribers: int, seconds: float,
    *, commits: bool = False,
) -> Outcome:  # fmt: skip
    received = Received()
    url = base_url.replace("http://", "ws://") + "/graphql"
    sockets = await asyncio.wait_for(
        asyncio.gather(*(subscriber(url, token, task_id, received) for _ in range(subscribers))),
        60,
    )
    hitter = await Hitter.open(base_url, paths, delivery_ids, connections=_CONCURRENCY)
    try:
        # Warm up, until every subscriber hears the hits.
        while True:
            await hitter.hit()
            warm = hitter.delivery_ids[hitter._next - 1]
            try:
                await asyncio.wait_for(received.all_arrived(warm, subscribers).wait(), 2)
                break
            except TimeoutError:
                continue

        # 4,000 messages/s: 20 hits/s to 200 subscribers
        rate = 4000 / subscribers
        first = hitter._next
        before = await server_metrics(base_url) if commits else {}
        await hitter.at_rate(rate, seconds)
        measured = hitter.delivery_ids[first : hitter._next]
        expected = len(measured) * subscribers
        # Until every message arrived, or 10 s more (the rest are then lost).
        arrivals = [received.all_arrived(i, subscribers).wait() for i in measured]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*arrivals), 10)
        values = sorted(latencies(hitter, received, measured))
        delivered = len(values)
        profile = commit_profile(before, await server_metrics(base_url)) if commits else ""

        # The ceiling: hits as fast as they are taken, messages/s as received
        before_count = received.count
        cpu_before = cpu_seconds([pid])
        client_before = cpu_seconds([os.getpid()])
        started = time.monotonic()
        hits_before = hitter._next
        await hitter.flat_out(seconds=min(seconds, 5), concurrency=_CONCURRENCY)
        sent_window = time.monotonic() - started
        ceiling_hits = hitter._next - hits_before
        await asyncio.sleep(0.5)
        window = time.monotonic() - started
        messages = received.count - before_count
        ceiling = messages / window
        cpu = cpu_seconds([pid]) - cpu_before
        client_cpu = cpu_seconds([os.getpid()]) - client_before
    finally:
        await hitter.aclose()
        for ws in sockets:
            ws.close()
    p50 = statistics.median(values) if values else float("nan")
    p99 = values[int(len(values) * 0.99) - 1] if values else float("nan")
    outcome = Outcome(p50, p99, delivered, expected, ceiling, cpu / max(messages, 1) * 1e6)
    client_us = client_cpu / max(messages, 1) * 1e6
    print(
        f"  {label:<9} at {rate * subscribers:.0f} msg/s: p50 {p50:6.1f} ms, p99 {p99:6.1f} ms"
        f" ({delivered}/{expected} delivered) | ceiling {ceiling:8.0f} msg/s"
        f" ({ceiling_hits} hits in {sent_window:.1f} s) | CPU per message: server"
        f" {outcome.cpu_per_message_us:.0f} us, this client {client_us:.0f}"
        f" us | load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    if profile:
        print(f"  {'':<9} {profile}", flush=True)
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
            await settle(db)
        finally:
            await db.dispose()
        port = free_port()
        with tempfile.TemporaryDirectory(prefix="beacon-bench-") as directory:
            # One token stands for every dashboard here: let it open them all.
            env = beacon_env(
                url, port, Path(directory) / "data", BROADCAST_URL="memory://",
                WS_MAX_CONNECTIONS_PER_TOKEN=str(subscribers),
            )  # fmt: skip
            async with serving(
                beacon_command(), env, port, Path(directory) / "beacon.log"
            ) as server:
                return await measure(
                    "Beacon", server.base_url, server.pid, seeded.token, str(seeded.task_id),
                    pixel_paths(seeded.pixel_ids), [str(d) for d in seeded.delivery_ids],
                    subscribers, seconds, commits=True,
                )  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--only", choices=["beacon", "baseline"], help="one server only")
    args = parser.parse_args()
    hits = 20_000
    if args.only == "beacon":
        await run_beacon(args.subscribers, args.seconds, hits)
        return
    base = await run_baseline(args.subscribers, args.seconds, hits)
    if args.only == "baseline":
        return
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
    uvloop.run(main())
