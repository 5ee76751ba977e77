"""The delivery log's page time on PostgreSQL with 1,000,000 deliveries in one account,
against a primary-key lookup of the same rows in the same run.

    .venv/bin/python -m benchmarks.delivery_log_at_scale [--deliveries 1000000] [--runs 300]

A fresh PostgreSQL database gets one account with `--deliveries` deliveries (and another
account with `--others`), written in bulk by SQL (tests/support/delivery_seed.py) and
ANALYZEd. Each case reads a page of 50 through db/delivery_log.py, as the `deliveries`
query does, `--runs` times; the baseline reads the same 50 rows by their ids (the primary
key, with the same join). Figures are p50 and p99 in ms, and EXPLAIN ANALYZE shows the
plans of the first page, a deep one and a filtered one. Target: a page under 50 ms. It
also times `deliveryStats`' query over the same account, which counts every delivery
active in its range.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from benchmarks.support import fresh_postgres
from common.cursors import decode_cursor, encode_cursor
from common.domain import Channel, DeliveryState, Plan, ReadConfidence
from db import accounts as db_accounts
from db import delivery_log as db_log
from db import stats as db_stats
from db.engine import Database
from db.tables import deliveries
from tests.support.delivery_seed import seed_deliveries

TARGET_MS = 50.0
_EXECUTION = re.compile(r"Execution Time: ([0-9.]+) ms")
PAGE = 50


async def timed(run: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, float]:
    """p50 and p99 of `runs` calls, in ms (after a few to warm up)."""
    for _ in range(5):
        await run()
    spent = []
    for _ in range(runs):
        started = time.perf_counter()
        await run()
        spent.append((time.perf_counter() - started) * 1000)
    spent.sort()
    return statistics.median(spent), spent[min(len(spent) - 1, int(len(spent) * 0.99))]


async def explain(db: Database, query: sa.Select[Any]) -> str:
    async with db.read() as conn:
        compiled = query.compile(conn.sync_connection, compile_kwargs={"literal_binds": True})
        rows = await conn.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"))
        return "\n".join("    " + line for line in rows.scalars())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--others", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    async with fresh_postgres() as url:
        db = Database(url)
        try:
            started = time.monotonic()
            async with db.write() as conn:
                owner = await db_accounts.create_account(
                    conn, name="Big", plan=Plan.PREMIUM, email="big@bench.test", person_name="B"
                )
                other = await db_accounts.create_account(
                    conn, name="Other", plan=Plan.PREMIUM, email="o@bench.test", person_name="O"
                )
            if args.others:
                await seed_deliveries(url, other.account_id, other.person_id, args.others)
            task_id = await seed_deliveries(url, owner.account_id, owner.person_id, args.deliveries)
            async with db.read() as conn:
                count = (await conn.exec_driver_sql("SELECT count(*) FROM deliveries")).scalar()
                middle = (
                    await conn.execute(
                        sa.select(deliveries.c.queued_at, deliveries.c.id)
                        .where(deliveries.c.account_id == owner.account_id)
                        .order_by(deliveries.c.queued_at.desc(), deliveries.c.id.desc())
                        .offset(args.deliveries // 2)
                        .limit(1)
                    )
                ).one()
            print(f"{count:,} deliveries, seeded in {time.monotonic() - started:.0f} s", flush=True)
            cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=365)
            deep = encode_cursor(middle.queued_at, middle.id)
            cases: list[tuple[str, db_log.DeliveryFilter, str | None]] = [
                ("first page", db_log.DeliveryFilter(), None),
                (f"a page {args.deliveries // 2:,} rows deep", db_log.DeliveryFilter(), deep),
                ("state=FAILED (5%)", db_log.DeliveryFilter(state=DeliveryState.FAILED), None),
                (
                    "state=FAILED, channel=SMS (1%)",
                    db_log.DeliveryFilter(state=DeliveryState.FAILED, channel=Channel.SMS),
                    None,
                ),
                ("channel=SMS (20%)", db_log.DeliveryFilter(channel=Channel.SMS), None),
                (
                    "readConfidence=HUMAN (~3%)",
                    db_log.DeliveryFilter(read_confidence=ReadConfidence.HUMAN),
                    None,
                ),
                ("address (1 in 997)", db_log.DeliveryFilter(address="user7@seed.test"), None),
                ("taskId", db_log.DeliveryFilter(task_id=task_id), None),
            ]
            results = []
            plans: dict[str, str] = {}
            for label, wanted, after in cases:

                async def page(wanted: db_log.DeliveryFilter = wanted, after: Any = after) -> Any:
                    async with db.read() as conn:
                        return await db_log.page(
                            conn, owner.account_id, wanted, cutoff=cutoff, first=PAGE, after=after
                        )

                rows = (await page()).rows
                ids = [row.id for row in rows]

                async def by_ids(ids: list[uuid.UUID] = ids) -> Any:
                    async with db.read() as conn:
                        return (
                            await conn.execute(db_log._LOG.where(deliveries.c.id.in_(ids)))
                        ).all()

                p50, p99 = await timed(page, args.runs)
                b50, b99 = await timed(by_ids, args.runs)
                position = decode_cursor(after) if after is not None else None
                query = db_log._query(owner.account_id, wanted, cutoff, position, PAGE + 1)
                plans[label] = await explain(db, query)
                in_db = _EXECUTION.search(plans[label])
                results.append((label, p50, p99, b50, b99))
                print(
                    f"  {label}: {len(rows)} rows, page p50 {p50:.2f} ms p99 {p99:.2f} ms"
                    f" ({in_db.group(1) if in_db else '?'} ms of it executing in PostgreSQL);"
                    f" the same rows by primary key p50 {b50:.2f} ms p99 {b99:.2f} ms",
                    flush=True,
                )
            for label in (cases[0][0], cases[1][0], cases[2][0]):
                print(f"EXPLAIN (ANALYZE, BUFFERS) of {label}:\n{plans[label]}")
            # The rates chart's query: it counts every delivery that did something in the
            # range (here all of them), so it grows with the account's activity, not a page.
            for bucket, span in ((db_stats.Bucket.DAY, dt.timedelta(days=7)),
                                 (db_stats.Bucket.HOUR, dt.timedelta(hours=48))):  # fmt: skip

                async def rates(bucket: db_stats.Bucket = bucket, span: Any = span) -> Any:
                    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
                    async with db.read() as conn:
                        return await db_stats.delivery_counts(
                            conn,
                            owner.account_id,
                            since=now - span,
                            until=now + dt.timedelta(hours=1),
                            bucket=bucket,
                            cutoff=cutoff,
                        )

                r50, _ = await timed(rates, 5)
                print(
                    f"  deliveryStats over {span} by {bucket.value}: p50 {r50:.0f} ms", flush=True
                )
            worst = max(p99 for _, _, p99, _, _ in results)
            worst_baseline = max(b99 for _, _, _, _, b99 in results)
            print(
                f"delivery log: worst page p50 {max(p50 for _, p50, _, _, _ in results):.2f} ms,"
                f" p99 {worst:.2f} ms (primary-key reads of the same rows: p99 up to"
                f" {worst_baseline:.2f} ms) with {args.deliveries:,} deliveries in the account"
                f" (target < {TARGET_MS:.0f} ms: {'met' if worst < TARGET_MS else 'MISSED'})"
            )
        finally:
            await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
