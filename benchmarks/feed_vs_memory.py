"""(c) The task feed (50 comments x 10 deliveries) served from the database, against the
same schema served from memory.

    .venv/bin/python -m benchmarks.feed_vs_memory [--seconds 5] [--only postgres]

On a fresh database (PostgreSQL, then SQLite) holding one task with 10 subscribers and
50 comments, each notifying all of them (500 deliveries, with their history): the
dashboard's feed query (benchmarks/feed_support.py) runs in-process through Beacon's own
schema and resolvers, back to back, with fresh DataLoaders each time:

  database: every read through the DataLoaders and SQLAlchemy, as served;
  memory:   the same resolvers, with each database read answered from what the first
            run read (no SQL at all): the cost of the GraphQL layer alone.

The two alternate three times and each rate is the median. The SQL statement count of one
feed is printed too: constant, whatever the number of comments. Target: the database at
least 0.7x the rate from memory.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
from pathlib import Path

from benchmarks.feed_support import (
    MemoryDatabase,
    context_for,
    counting,
    reads_from_memory,
    recorded_reads,
    run_feed,
    summary,
    timed,
)
from benchmarks.support import fresh_database, median, seed_comments
from db.accounts import Viewer
from db.engine import Database
from tests.support.builders import make_settings

TARGET = 0.7


async def measure(kind: str, seconds: float) -> float:
    async with fresh_database(kind) as url:
        db = Database(url)
        try:
            seeded = await seed_comments(db, comments=50, recipients=10)
            with tempfile.TemporaryDirectory() as directory:
                settings = make_settings(Path(directory))
            viewer = Viewer(seeded.account_id, seeded.person_id)
            from_db = context_for(db, viewer, settings)
            for _ in range(10):  # warm: pool, statement caches
                await run_feed(from_db, seeded.task_id)
            with counting(db) as statements:
                data = await run_feed(from_db, seeded.task_id)
            edges = data["task"]["comments"]["edges"]
            assert len(edges) == 50
            assert all(len(e["node"]["deliveryStatus"]["deliveries"]) == 10 for e in edges)
            with recorded_reads() as kept:
                await run_feed(from_db, seeded.task_id)
            in_memory = context_for(db, viewer, settings)
            in_memory.services = dataclasses.replace(
                in_memory.services,
                db=MemoryDatabase(),  # type: ignore[arg-type]
            )
            rates: dict[str, list[float]] = {"database": [], "memory": []}
            for _ in range(3):
                values = await timed(lambda: run_feed(from_db, seeded.task_id), seconds)
                rates["database"].append(len(values) / sum(values))
                print(f"  {kind} database: {summary(values)}", flush=True)
                with reads_from_memory(kept), counting(db) as none:
                    values = await timed(lambda: run_feed(in_memory, seeded.task_id), seconds)
                assert none == [], "the memory run sent SQL"
                rates["memory"].append(len(values) / sum(values))
                print(f"  {kind} memory:   {summary(values)}", flush=True)
        finally:
            await db.dispose()
    ratio = median(rates["database"]) / median(rates["memory"])
    print(
        f"(c) {kind}: feed from the database {median(rates['database']):.1f}/s vs from memory"
        f" {median(rates['memory']):.1f}/s = {ratio:.2f}x (target >= {TARGET}x:"
        f" {'met' if ratio >= TARGET else 'MISSED'}); {len(statements)} SQL statements per feed",
        flush=True,
    )
    return ratio


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    for kind in [args.only] if args.only else ["postgres", "sqlite"]:
        await measure(kind, args.seconds)


if __name__ == "__main__":
    asyncio.run(main())
