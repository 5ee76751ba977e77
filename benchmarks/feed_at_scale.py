"""(d) The task feed's latency on PostgreSQL with 1,000,000 deliveries in the database,
against the same with 10,000.

    .venv/bin/python -m benchmarks.feed_at_scale [--deliveries 1000000] [--seconds 5]

Two fresh PostgreSQL databases hold the same measured task (10 subscribers, 50
comments, 500 deliveries) in one account; around it, the same account has filler tasks
whose comments notify the same people, up to 10,000 deliveries in one database and
1,000,000 in the other (each with its message and one event, written in bulk by SQL,
then ANALYZEd as autovacuum would). The dashboard's feed query
(benchmarks/feed_support.py) runs in-process through Beacon's schema, back to back,
alternating between the two databases three times; each figure is the median latency.
Target: the large database within 1.3x of the small one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event

from benchmarks.feed_support import context_for, counting, run_feed, timed
from benchmarks.support import analyze, fresh_postgres, seed_comments
from db.accounts import Viewer
from db.engine import Database
from resolvers.context import Context
from tests.support.builders import make_settings

TARGET = 1.3
MEASURED = 500  # deliveries of the measured task (50 comments x 10)

# Filler: tasks of 100 comments, each comment notifying the measured task's 10 people.
_FILL = """
WITH people AS (
    SELECT array_agg(person_id ORDER BY position) AS ids FROM task_subscribers WHERE task_id = $3
), new_tasks AS (
    INSERT INTO tasks (id, account_id, title, created_by, created_at)
    SELECT gen_random_uuid(), $1, 'Filler ' || g, $2, now() - interval '1 day'
    FROM generate_series(1, $4::int) AS g
    RETURNING id, created_at
), new_comments AS (
    INSERT INTO comments (id, account_id, task_id, author_id, body, is_system, created_at)
    SELECT gen_random_uuid(), $1, t.id, $2, 'filler', false, t.created_at + g * interval '1 ms'
    FROM new_tasks t CROSS JOIN generate_series(1, 100) AS g
    RETURNING id, task_id, created_at
), new_notifications AS (
    INSERT INTO notifications (id, account_id, task_id, comment_id, kind, created_at)
    SELECT gen_random_uuid(), $1, c.task_id, c.id, 'COMMENT_ADDED', c.created_at
    FROM new_comments c
    RETURNING id, created_at
)
INSERT INTO filler (message_id, delivery_id, notification_id, created_at, position, person_id)
SELECT gen_random_uuid(), gen_random_uuid(), n.id, n.created_at, r.ord - 1, r.person_id
FROM new_notifications n, people, unnest(people.ids) WITH ORDINALITY AS r(person_id, ord)
"""
_FILLER_ROWS = [
    """INSERT INTO messages (id, account_id, notification_id, channel, header_message_id,
                             pixel_id, created_at)
       SELECT message_id, $1, notification_id, 'EMAIL', '<' || message_id || '@bench.test>',
              replace(message_id::text, '-', ''), created_at
       FROM filler""",
    """INSERT INTO deliveries (id, account_id, notification_id, message_id, recipient_id,
                               position, channel, address, state, attempts, queued_at,
                               sent_at, accepted_by, open_count)
       SELECT delivery_id, $1, notification_id, message_id, person_id, position, 'EMAIL',
              'filler@bench.test', 'SENT', 1, created_at, created_at, 'mx.bench.test', 0
       FROM filler""",
    """INSERT INTO delivery_events (delivery_id, type, at, detail)
       SELECT delivery_id, 'sent', created_at, '250 ok' FROM filler""",
]


@contextlib.contextmanager
def sql_time(db: Database) -> Iterator[list[float]]:
    """Seconds each statement took, from sending it to its answer."""
    spent: list[float] = []

    def before(conn: Any, *_: Any) -> None:
        conn.info["beacon_started"] = time.perf_counter()

    def after(conn: Any, *_: Any) -> None:
        spent.append(time.perf_counter() - conn.info.pop("beacon_started"))

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    event.listen(db.engine.sync_engine, "after_cursor_execute", after)
    try:
        yield spent
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", before)
        event.remove(db.engine.sync_engine, "after_cursor_execute", after)


@dataclass(frozen=True)
class Setup:
    label: str
    db: Database
    context: Context
    task_id: object


async def fill(
    url: str, account_id: object, author_id: object, task_id: object, total: int
) -> None:
    """Filler deliveries until the database holds `total` in all."""
    tasks = max(round((total - MEASURED) / 1000), 0)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TEMP TABLE filler (message_id uuid, delivery_id uuid, notification_id uuid,"
            " created_at timestamptz, position int, person_id uuid)"
        )
        # In steps of 100 tasks (100,000 deliveries), one transaction each.
        for start in range(0, tasks, 100):
            async with conn.transaction():
                await conn.execute("TRUNCATE filler")
                await conn.execute(_FILL, account_id, author_id, task_id, min(100, tasks - start))
                for statement in _FILLER_ROWS:
                    await conn.execute(statement, *([account_id] if "$1" in statement else []))
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def database_with(total: int, label: str, settings_dir: Path) -> AsyncIterator[Setup]:
    async with fresh_postgres() as url:
        db = Database(url)
        try:
            started = time.monotonic()
            seeded = await seed_comments(db, comments=50, recipients=10)
            await fill(url, seeded.account_id, seeded.person_id, seeded.task_id, total)
            await analyze(db)
            async with db.read() as conn:
                count = (await conn.exec_driver_sql("SELECT count(*) FROM deliveries")).scalar()
            print(
                f"  {label}: {count:,} deliveries, seeded in {time.monotonic() - started:.0f} s",
                flush=True,
            )
            viewer = Viewer(seeded.account_id, seeded.person_id)
            context = context_for(db, viewer, make_settings(settings_dir))
            yield Setup(label, db, context, seeded.task_id)
        finally:
            await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        async with (
            database_with(args.small, "small", Path(directory)) as small,
            database_with(args.deliveries, "large", Path(directory)) as large,
        ):
            latencies: dict[str, list[float]] = {"small": [], "large": []}
            in_sql: dict[str, list[float]] = {"small": [], "large": []}
            for setup in (small, large):
                for _ in range(10):  # warm: pool, statement caches, buffers
                    await run_feed(setup.context, setup.task_id)  # type: ignore[arg-type]
                with counting(setup.db) as statements, sql_time(setup.db) as spent:
                    await run_feed(setup.context, setup.task_id)  # type: ignore[arg-type]
                print(
                    f"  {setup.label}: {len(statements)} SQL statements per feed,"
                    f" {sum(spent) * 1000:.2f} ms in the database"
                )
            for _ in range(3):
                for setup in (small, large):
                    with sql_time(setup.db) as spent:
                        values = await timed(
                            lambda s=setup: run_feed(s.context, s.task_id),  # type: ignore[misc]
                            args.seconds,
                        )
                    latencies[setup.label].append(statistics.median(values) * 1000)
                    in_sql[setup.label].append(sum(spent) / len(values) * 1000)
                    print(
                        f"  {setup.label}: p50 {latencies[setup.label][-1]:.2f} ms"
                        f" ({len(values)} feeds; {in_sql[setup.label][-1]:.2f} ms of it in SQL)",
                        flush=True,
                    )
    small_ms = statistics.median(latencies["small"])
    large_ms = statistics.median(latencies["large"])
    ratio = large_ms / small_ms
    sql_ratio = statistics.median(in_sql["large"]) / statistics.median(in_sql["small"])
    print(
        f"(d) time in SQL per feed: {statistics.median(in_sql['large']):.2f} ms vs"
        f" {statistics.median(in_sql['small']):.2f} ms = {sql_ratio:.2f}x"
    )
    print(
        f"(d) feed p50 with {args.deliveries:,} deliveries {large_ms:.2f} ms vs with"
        f" {args.small:,} {small_ms:.2f} ms = {ratio:.2f}x (target <= {TARGET}x:"
        f" {'met' if ratio <= TARGET else 'MISSED'})"
    )


if __name__ == "__main__":
    asyncio.run(main())
