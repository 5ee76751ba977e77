"""(a) Pixel hits per second with every open recorded durably, against a bare route.

    .venv/bin/python -m benchmarks.pixel_throughput [--seconds 10] [--runs 9] [--only postgres]

For SQLite and for PostgreSQL, on a fresh database seeded with 20,000 deliveries sent a
day ago (each its own email and pixel; long past the read-confidence time rule, so every
open wrk makes, a HUMAN one as it sends no user agent, counts as a read):

  baseline: a bare Starlette route (benchmarks/bare_pixel_app.py) that checks the same
            HMAC and answers the same GIF, under uvicorn with the same settings as
            `python main.py serve` (one process, uvloop, httptools, no access log);
  Beacon:   `python main.py serve` (EMBEDDED_WORKER=0, default settings, so pixel hits
            are not logged): each hit is answered at once and joins the next group
            commit (the pixel's recorder waits for commits only past 10,000
            uncommitted opens).

wrk (`-t2 -c64`, Debian's package) loads random pixels of the seeded ones, on a database
settled after seeding (`benchmarks.support.settle`); baseline and Beacon runs alternate,
starting and ending with a baseline run, and the ratio is the median over `--runs` of
each Beacon run against the mean of the baseline runs on either side of it. Beacon's
rate counts only opens that reached the database: the growth of the 'opened' events
(every recorded open writes one) over the run, divided by wrk's duration, checked
against the growth of sum(open_count). The backlog (opens answered and not yet
committed) is sampled from /metrics every half second: its peak and last sample are
printed, and a run counts only if the outage buffer stayed empty. Targets: at least
0.85x the baseline on PostgreSQL, 0.5x on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import sqlalchemy as sa

from benchmarks.support import (
    ROOT,
    SECRET_KEY,
    beacon_command,
    beacon_env,
    cpu_seconds,
    free_port,
    fresh_database,
    median,
    pixel_paths,
    require_wrk,
    run_wrk,
    seed_comments,
    server_metrics,
    serving,
    settle,
)
from db.engine import Database
from db.tables import deliveries, delivery_events

TARGETS = {"postgres": 0.85, "sqlite": 0.5}
UNCOMMITTED = "beacon_pixel_opens_uncommitted"
SCRIPT = ROOT / "benchmarks" / "pixel_paths.lua"


@dataclass(frozen=True)
class Run:
    rate: float  # requests (baseline) or recorded opens (Beacon) per second
    answered: float  # requests per second as wrk saw them
    cpu_per_hit_us: float
    seconds: float  # wrk's own measure of the run


async def opens(db: Database) -> tuple[int, int]:
    """(opened events, sum of open counts), from one snapshot: opens that reached the
    database, and those of them that count as reads."""
    events = sa.select(sa.func.count()).where(delivery_events.c.type == "opened").scalar_subquery()
    counted = sa.select(sa.func.coalesce(sa.func.sum(deliveries.c.open_count), 0))
    async with db.read() as conn:
        row = (await conn.execute(sa.select(events, counted.scalar_subquery()))).one()
    return int(row[0]), int(row[1])


async def sample_backlog(base_url: str, samples: list[float]) -> None:
    """Every half second until cancelled: the opens answered and not yet committed."""
    while True:
        await asyncio.sleep(0.5)
        samples.append((await server_metrics(base_url))[UNCOMMITTED])


async def database_backends(url: str) -> list[int]:
    """The PostgreSQL server processes serving this database (none for SQLite)."""
    if not url.startswith("postgresql"):
        return []
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [row["pid"] for row in rows]


async def measure(kind: str, seconds: float, runs: int, connections: int) -> float:
    async with fresh_database(kind) as url:
        db = Database(url)
        try:
            # Sent long ago: the time rule (an open within seconds of sending is a
            # machine's) must not touch the opens measured.
            sent = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
            seeded = await seed_comments(db, comments=2000, recipients=10, now=sent)
            await settle(db)
            with tempfile.TemporaryDirectory(prefix="beacon-bench-") as directory:
                paths = Path(directory) / "paths.txt"
                paths.write_text("\n".join(pixel_paths(seeded.pixel_ids)) + "\n")
                wrk_env = {"PIXEL_PATHS": str(paths)}
                base_port, beacon_port = free_port(), free_port()
                bare = [
                    sys.executable, "-m", "uvicorn", "benchmarks.bare_pixel_app:app",
                    "--host", "127.0.0.1", "--port", str(base_port),
                    "--no-access-log", "--log-level", "warning",
                ]  # fmt: skip
                env = beacon_env(url, beacon_port, Path(directory) / "data")
                async with (
                    serving(bare, {**env, "SECRET_KEY": SECRET_KEY}, base_port,
                            Path(directory) / "bare.log") as baseline,
                    serving(beacon_command(), env, beacon_port,
                            Path(directory) / "beacon.log") as beacon,
                ):  # fmt: skip
                    for server in (baseline, beacon):  # warm up
                        await run_wrk(
                            server.base_url, seconds=2, connections=connections,
                            script=SCRIPT, env=wrk_env,
                        )  # fmt: skip
                    base_runs: list[Run] = []
                    beacon_runs: list[Run] = []
                    for number in range(runs):
                        base_runs.append(
                            await one_run(baseline.base_url, baseline.pid, seconds,
                                          connections, wrk_env)
                        )  # fmt: skip
                        before = await opens(db)
                        batches = await server_metrics(beacon.base_url)
                        backends = await database_backends(url)
                        db_cpu = cpu_seconds(backends)
                        samples: list[float] = []
                        sampling = asyncio.create_task(sample_backlog(beacon.base_url, samples))
                        run = await one_run(beacon.base_url, beacon.pid, seconds,
                                            connections, wrk_env)  # fmt: skip
                        db_cpu = cpu_seconds(backends) - db_cpu
                        sampling.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await sampling
                        db_us = db_cpu / max(run.answered * run.seconds, 1) * 1e6
                        events, counted = await opens(db)
                        recorded = (events - before[0]) / run.seconds
                        if counted - before[1] != events - before[0]:
                            print(
                                f"  {events - before[0]} opens recorded but"
                                f" {counted - before[1]} counted as reads"
                            )
                        after = await server_metrics(beacon.base_url)
                        buffered = after.get("beacon_pixel_opens_buffered", 0.0)
                        peak, last = max(samples, default=0.0), (samples or [0.0])[-1]
                        per_commit = (
                            after["beacon_pixel_commit_opens_sum"]
                            - batches["beacon_pixel_commit_opens_sum"]
                        ) / max(
                            after["beacon_pixel_commit_opens_count"]
                            - batches["beacon_pixel_commit_opens_count"],
                            1,
                        )
                        beacon_runs.append(
                            Run(recorded, run.answered, run.cpu_per_hit_us, run.seconds)
                        )
                        print(
                            f"  {kind} run {number + 1}: baseline {base_runs[-1].rate:8.0f} req/s"
                            f" | Beacon {run.answered:8.0f} req/s answered,"
                            f" {recorded:8.0f} opens/s recorded ({per_commit:.0f} per commit),"
                            f" backlog peak {peak:g}, last {last:g},"
                            f" buffered {buffered:g}"
                            f" | CPU/hit {base_runs[-1].cpu_per_hit_us:.0f} us vs"
                            f" {run.cpu_per_hit_us:.0f} us"
                            + (f" + PostgreSQL {db_us:.0f} us" if backends else ""),
                            flush=True,
                        )
                        if buffered:
                            print("  (opens went to the outage buffer: this run does not count)")
                            beacon_runs[-1] = Run(0.0, run.answered, 0.0, run.seconds)
                    # The baseline run after the last Beacon run: each has one on either side.
                    base_runs.append(
                        await one_run(baseline.base_url, baseline.pid, seconds,
                                      connections, wrk_env)
                    )  # fmt: skip
                    print(f"  {kind} closing baseline {base_runs[-1].rate:8.0f} req/s", flush=True)
        finally:
            await db.dispose()
    # Each Beacon run against the mean of the baseline runs just before and just after it:
    # the machine's own speed drifts over a minute more than between neighbouring runs,
    # and a drift during the pair no longer counts for or against Beacon.
    ratios = [
        ours.rate / ((before.rate + after.rate) / 2)
        for before, ours, after in zip(base_runs[:-1], beacon_runs, base_runs[1:], strict=True)
    ]
    ratio = median(ratios)
    verdict = "met" if ratio >= TARGETS[kind] else "MISSED"
    print(
        f"(a) {kind}: Beacon {median([r.rate for r in beacon_runs]):.0f} opens/s recorded vs"
        f" bare route {median([r.rate for r in base_runs]):.0f} req/s (medians);"
        f" run by run {', '.join(f'{r:.2f}' for r in ratios)}: median {ratio:.2f}x"
        f" (target >= {TARGETS[kind]}x: {verdict})",
        flush=True,
    )
    return ratio


async def one_run(
    base_url: str, pid: int, seconds: float, connections: int, wrk_env: dict[str, str]
) -> Run:
    cpu_before = cpu_seconds([pid])
    result = await run_wrk(
        base_url, seconds=seconds, connections=connections, script=SCRIPT, env=wrk_env
    )
    cpu = cpu_seconds([pid]) - cpu_before
    if result.errors:
        print(f"  wrk saw {result.errors} errors on {base_url}")
    return Run(result.rate, result.rate, cpu / max(result.requests, 1) * 1e6, result.seconds)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    require_wrk()
    kinds = [args.only] if args.only else ["sqlite", "postgres"]
    for kind in kinds:
        await measure(kind, args.seconds, args.runs, args.connections)


if __name__ == "__main__":
    asyncio.run(main())
