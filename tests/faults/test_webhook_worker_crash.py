"""kill -9 of a worker while status webhooks are in flight: another worker sends them
once the lease runs out; nothing is lost, and a duplicate carries the same event id and
the same bytes. A real worker process, PostgreSQL and a real receiver."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa

from db import webhook_endpoints as db_endpoints
from db.engine import Database
from db.tables import webhook_events
from domain.webhook_events import new_secret
from tests.faults.helpers import WorkerProcess, show_output, worker_env
from tests.support.builders import T0, add_comment, add_people, create_account, create_task
from tests.support.providers.status_receiver import StatusReceiver
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

# Two workers leasing one job at once: PostgreSQL only.
postgres_only = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@postgres_only
async def test_a_worker_killed_with_webhooks_in_flight_loses_none_and_repeats_only_by_id(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    # given: an endpoint whose receiver holds every request, and 20 status changes
    receiver = StatusReceiver(new_secret())
    receiver.gate = asyncio.Event()
    workers: list[WorkerProcess] = []
    async with receiver, SmtpSink() as sink:
        account = await create_account(db)
        assert receiver.secret is not None
        async with db.write() as conn:
            endpoint = await db_endpoints.create_endpoint(
                conn,
                account_id=account.account_id,
                url=receiver.url,
                event_types=["QUEUED"],
                channels=[],
                secret=receiver.secret,
                now=T0,
            )
        people = await add_people(db, account.account_id, [f"p{n}@example.test" for n in range(5)])
        task_id = await create_task(db, account.account_id, subscriber_ids=[p.id for p in people])
        for _ in range(4):
            await add_comment(
                db, account.account_id, task_id, author_id=account.owner_id, recipients=people
            )
        async with db.read() as conn:
            expected = {
                f"evt_{n}"
                for n in (
                    await conn.execute(
                        sa.select(webhook_events.c.id).where(
                            webhook_events.c.endpoint_id == endpoint.id
                        )
                    )
                ).scalars()
            }
        assert len(expected) == 20
        env = worker_env(
            database_url,
            sink.port,
            tmp_path / "data",
            ALLOW_PRIVATE_NETWORKS="1",
            LEASE_SECONDS="3",
            WEBHOOK_RETRY_SECONDS="0.2,0.2,0.2,0.2,0.2",
        )
        try:
            # when: the first worker is killed while its request waits for an answer
            first = WorkerProcess(env, "first")
            workers.append(first)
            await first.start()
            await first.wait_started()
            async with asyncio.timeout(30):
                await receiver.someone_waits.wait()
            first.kill()
            await first.wait()
            receiver.gate.set()
            second = WorkerProcess(env, "second")
            workers.append(second)
            await second.start()
            await second.wait_started()

            # then: every event arrives, answered 200, once its lease ran out
            async def all_delivered() -> None:
                assert set(receiver.ids()) >= expected
                async with db.read() as conn:
                    statuses = (
                        await conn.execute(
                            sa.select(webhook_events.c.status).where(
                                webhook_events.c.endpoint_id == endpoint.id
                            )
                        )
                    ).scalars()
                    assert set(statuses) == {"DELIVERED"}

            await eventually(all_delivered, timeout=60)
        finally:
            for worker in workers:
                await worker.stop()
            show_output(workers)

    bodies: dict[str, set[bytes]] = defaultdict(set)
    for received in receiver.received:
        assert received.verified
        bodies[received.webhook_id].add(received.body)
    assert set(bodies) == expected
    assert all(len(variants) == 1 for variants in bodies.values())
