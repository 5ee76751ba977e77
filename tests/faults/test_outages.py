"""Outages with real processes: the SMTP server away for 30 s, PostgreSQL restarted under
a running server, pixel hits while the database is unreachable, and SIGTERM to a worker
in the middle of sending. Nothing is lost, and nothing needs a restart to recover."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from common.domain import DeliveryState
from common.tokens import PIXEL, sign
from db.deliveries import transition
from db.engine import Database
from db.tables import deliveries, send_jobs
from sending.backoff import retry_delay
from tests.faults.helpers import (
    HoldingSmtpSink,
    Seeded,
    WorkerProcess,
    can_restart_postgres,
    ensure_postgres_up,
    jobs_leased_by_pid,
    queued_without_retry_event,
    received_ids,
    restart_postgres,
    seed_deliveries,
    show_output,
    state_counts,
    wait_for_postgres,
    worker_env,
)
from tests.support.builders import SECRET_KEY, add_people, create_task, message_of
from tests.support.builders import delivery as delivery_row
from tests.support.graphql_client import GraphQLClient
from tests.support.reading import READ_AS_PERSON
from tests.support.server import ServerProcess
from tests.support.services import require_service
from tests.support.smtp_sink import SmtpSink
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

# The setting is PostgreSQL with worker processes; the restart and the proxied
# database are PostgreSQL's by nature. Only the SIGTERM test also runs on SQLite.
postgres_only = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

SENT = DeliveryState.SENT.value
QUEUED = DeliveryState.QUEUED.value
FAILED = DeliveryState.FAILED.value
READ = DeliveryState.READ.value

GIF_BYTES = 43

DELIVERY = """
query Delivery($id: ID!) {
  delivery(id: $id) { id state openCount readAt sentAt events { type at } }
}
"""

ADD_COMMENT = """
mutation AddComment($taskId: ID!, $body: String!) {
  addComment(input: {taskId: $taskId, body: $body}) {
    id
    deliveryStatus { total deliveries { id state } }
  }
}
"""


def dump_server_log(server: ServerProcess) -> None:
    """Captured by pytest and shown only when the test fails: the server's side."""
    sys.stderr.write(f"----- server log ({server.base_url}) -----\n{server.log}\n")


async def all_sent(db: Database, seeded: Seeded, timeout: float) -> None:
    async def check() -> None:
        counts = await state_counts(db, seeded.delivery_ids)
        assert counts == {SENT: len(seeded.delivery_ids)}, counts

    await eventually(check, timeout=timeout)


# --------------------------------------------------------------------------- SMTP outage

OUTAGE_SECONDS = 30.0
RETRY_BASE_SECONDS = 0.25
RETRY_MAX_SECONDS = 2.0
SEND_MAX_ATTEMPTS = 60


def shortest_retry_window(attempts: int, base: float, cap: float) -> float:
    """The least time between a delivery's first attempt and its last (every backoff at
    its smallest jitter): an outage shorter than this fails nothing."""
    return sum(retry_delay(a, base=base, cap=cap, rand=0.0) for a in range(1, attempts))


@postgres_only
async def test_given_the_smtp_server_down_for_30_seconds_mid_run_then_deliveries_wait_with_retries_none_fails_and_all_are_sent_once_it_is_back(  # noqa: E501
    db: Database, database_url: str, tmp_path: Path
) -> None:
    # Given 100 queued deliveries, a worker sending them, and a retry window of more
    # than 30 s (60 attempts, 0.25 s doubling up to 2 s, jitter at most halving it: at
    # least 57 s)
    window = shortest_retry_window(SEND_MAX_ATTEMPTS, RETRY_BASE_SECONDS, RETRY_MAX_SECONDS)
    assert window > OUTAGE_SECONDS + 10
    seeded = await seed_deliveries(db, people=10, comments=10)
    total = len(seeded.delivery_ids)
    # The sink holds every transaction after the 20th at MAIL FROM: when it goes down,
    # sends are in flight, not done.
    first = HoldingSmtpSink(hold_after=20)
    await first.start()
    port = first.port
    second: SmtpSink | None = None
    worker = WorkerProcess(
        worker_env(
            database_url,
            port,
            tmp_path / "worker",
            RETRY_BASE_SECONDS=str(RETRY_BASE_SECONDS),
            RETRY_MAX_SECONDS=str(RETRY_MAX_SECONDS),
            SEND_MAX_ATTEMPTS=str(SEND_MAX_ATTEMPTS),
            WORKER_POLL_SECONDS="0.1",
            LEASE_SECONDS="30",
        ),
        label="smtp-outage",
    )
    try:
        await worker.start()
        await first.wait_for_messages(20, timeout=60)
        await first.wait_for_waiting(1)

        # When the SMTP server goes away mid-run, for 30 s
        await first.stop()
        loop = asyncio.get_running_loop()
        back_at = loop.time() + OUTAGE_SECONDS
        # Then, all through the outage, nothing fails: the deliveries wait
        while loop.time() < back_at:
            counts = await state_counts(db, seeded.delivery_ids)
            assert counts[FAILED] == 0, counts
            # Polling the database the worker process writes.
            await asyncio.sleep(0.1)
        counts = await state_counts(db, seeded.delivery_ids)
        assert counts[FAILED] == 0, counts
        # (what the server accepted before it went down is SENT; an acceptance whose
        # reply was cut off stays QUEUED and is sent again: at-least-once)
        assert counts[SENT] <= len(first.messages), counts
        assert counts[QUEUED] == total - counts[SENT] > 0, counts
        # ... each of them QUEUED with its failed attempts counted and retries scheduled
        assert await queued_without_retry_event(db, seeded.delivery_ids) == 0
        assert worker.running, worker.output
        waited = counts[QUEUED]

        # When the SMTP server is back on the same port
        second = SmtpSink(port=port)
        await second.start()

        # Then every delivery is sent, without a restart, and none is lost
        await all_sent(db, seeded, timeout=30)
        received = received_ids(first, second)
        assert set(seeded.message_ids.values()) <= set(received)
        assert len(second.messages) >= waited
        sys.stdout.write(
            f"\nSMTP outage: {waited} of {total} deliveries waited {OUTAGE_SECONDS:g} s, "
            f"0 failed, all sent after it; "
            f"{sum(received.values()) - len(received)} duplicates\n"
        )
        worker.terminate()
        assert await worker.wait() == 0, worker.output
    finally:
        await worker.stop()
        show_output([worker])
        await first.stop()
        if second is not None:
            await second.stop()


# --------------------------------------------------------------------------- PostgreSQL restart


# It cuts every connection to the cluster, other test processes' too: `make test` runs it
# on its own, after the parallel run.
@pytest.mark.exclusive
@postgres_only
async def test_given_a_running_server_when_postgres_restarts_mid_run_then_nothing_in_flight_is_lost_and_a_new_comment_is_sent_without_a_server_restart(  # noqa: E501
    db: Database, database_url: str, tmp_path: Path
) -> None:
    if not can_restart_postgres():
        require_service("pg_ctlcluster", "this test restarts the local PostgreSQL cluster")
    # Given 200 queued deliveries, and a task whose one follower gets the new comment
    seeded = await seed_deliveries(db, people=20, comments=10)
    (follower,) = await add_people(db, seeded.account_id, ["follower@example.test"])
    later_task = await create_task(
        db,
        seeded.account_id,
        subscriber_ids=[follower.id],
        created_by=seeded.owner_id,
        now=dt.datetime.now(dt.UTC),
    )
    # ... an SMTP server that holds every transaction after the 40th at MAIL FROM
    sink = HoldingSmtpSink(hold_after=40)
    await sink.start()
    # ... and a server with its own worker, on that database
    server = ServerProcess(
        tmp_path / "server",
        {
            "DATABASE_URL": database_url,
            "SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
            "EMBEDDED_WORKER": "1",
            "LEASE_SECONDS": "3",
            "WORKER_POLL_SECONDS": "0.1",
            "RETRY_BASE_SECONDS": "0.2",
            "RETRY_MAX_SECONDS": "1",
            "SEND_MAX_ATTEMPTS": "100",
            "RECIPIENT_RATE_LIMIT": "1000000",
        },
    )
    client = GraphQLClient(server.base_url, seeded.token)
    try:
        await server.start()
        await sink.wait_for_messages(40, timeout=60)
        await sink.wait_for_waiting(1)

        # When PostgreSQL restarts while sends are in flight (released as it goes down:
        # their outcomes meet a database that is away)
        restart = asyncio.create_task(restart_postgres())
        sink.release()
        await restart
        await wait_for_postgres()

        # Then every delivery ends SENT, and every email reached the SMTP server
        await all_sent(db, seeded, timeout=60)
        received = received_ids(sink)
        assert set(seeded.message_ids.values()) <= set(received)
        sys.stdout.write(
            f"\nPostgreSQL restart: {len(seeded.delivery_ids)} deliveries all SENT, 0 lost, "
            f"{sum(received.values()) - len(received)} duplicates\n"
        )

        # And a new comment through GraphQL is sent, with no server restart
        data = await client.execute(
            ADD_COMMENT, {"taskId": str(later_task), "body": "after the restart"}
        )
        (delivery,) = data["addComment"]["deliveryStatus"]["deliveries"]

        async def sent() -> dict[str, Any]:
            found: dict[str, Any] = (await client.execute(DELIVERY, {"id": delivery["id"]}))[
                "delivery"
            ]
            assert found["state"] == SENT, found
            return found

        await eventually(sent, timeout=30)
        message = await message_of(db, uuid.UUID(delivery["id"]))
        assert message.header_message_id in received_ids(sink)

        # And the server is ready again
        async def ready() -> None:
            response = await client.http.get("/readyz")
            assert response.status_code == 200, response.text

        await eventually(ready, timeout=10)
        assert server.process is not None
        assert server.process.poll() is None, "the server must not have restarted"
    finally:
        await client.close()
        await server.stop()
        dump_server_log(server)
        await sink.stop()
        await ensure_postgres_up()


# --------------------------------------------------------------------------- pixel during an outage


async def sent_delivery_with_pixel(db: Database) -> tuple[Seeded, str]:
    """One SENT delivery whose email carried a pixel, and the pixel's path."""
    seeded = await seed_deliveries(db, people=1, comments=1)
    (delivery_id,) = seeded.delivery_ids
    async with db.write() as conn:
        moved = await transition(
            conn, [delivery_id], DeliveryState.SENT, {"sent_at": dt.datetime.now(dt.UTC)}
        )
        assert moved == [delivery_id]
        await conn.execute(send_jobs.delete())
    message = await message_of(db, delivery_id)
    assert message.pixel_id is not None
    return seeded, f"/p/{sign(message.pixel_id, SECRET_KEY.encode(), PIXEL)}.gif"


def through(proxy: TcpProxy, database_url: str) -> str:
    """The database URL, pointed at the proxy instead of the server."""
    url = sa.engine.make_url(database_url).set(host=proxy.host, port=proxy.port)
    return url.render_as_string(hide_password=False)


async def hit(http: httpx.AsyncClient, path: str) -> tuple[dt.datetime, dt.datetime]:
    """GET the pixel; checks the answer and that it came quickly. (time before, after)."""
    before = dt.datetime.now(dt.UTC)
    started = time.monotonic()
    response = await http.get(path, headers=READ_AS_PERSON)
    elapsed = time.monotonic() - started
    after = dt.datetime.now(dt.UTC)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert len(response.content) == GIF_BYTES
    # Quick: well under the database's 5 s connect timeout, so nothing waited for it.
    assert elapsed < 2.0, f"the pixel took {elapsed:.2f} s while the database was away"
    return before, after


async def opens_in_db(db: Database, delivery_id: uuid.UUID) -> tuple[str, int]:
    """(state, open count) as stored, read past the proxy."""
    row = await delivery_row(db, delivery_id)
    return str(row.state), int(row.open_count)


@postgres_only
@pytest.mark.parametrize(("buffer_size", "hits"), [(100, 3), (2, 5)], ids=["kept", "overflow"])
async def test_given_the_database_unreachable_when_the_pixel_is_hit_then_it_answers_the_gif_and_the_opens_are_recorded_once_the_database_is_back(  # noqa: E501
    db: Database, database_url: str, tmp_path: Path, buffer_size: int, hits: int
) -> None:
    # Given a SENT delivery with a pixel, and a server that reaches PostgreSQL through a
    # proxy this test can cut
    seeded, pixel_path = await sent_delivery_with_pixel(db)
    (delivery_id,) = seeded.delivery_ids
    kept = min(hits, buffer_size)
    async with TcpProxy("127.0.0.1", 5432) as proxy:
        server = ServerProcess(
            tmp_path / "server",
            {
                "DATABASE_URL": through(proxy, database_url),
                "EMBEDDED_WORKER": "0",
                "SMTP_URL": "smtp://127.0.0.1:9",
                "PIXEL_BUFFER_SIZE": str(buffer_size),
            },
        )
        client = GraphQLClient(server.base_url, seeded.token)
        http = client.http
        try:
            await server.start()
            assert (await http.get("/readyz")).status_code == 200

            # When the database becomes unreachable and the pixel is hit several times
            proxy.cut()
            assert (await http.get("/readyz")).status_code == 503
            times = [await hit(http, pixel_path) for _ in range(hits)]

            # Then every hit got the GIF at once, and nothing reached the database yet
            assert await opens_in_db(db, delivery_id) == (SENT, 0)
            if hits > buffer_size:
                # ... and what did not fit in the buffer is counted and logged, once the
                # commit they were taken for has failed
                async def dropped() -> None:
                    metrics = (await http.get("/metrics")).text
                    assert f"beacon_pixel_opens_dropped_total {float(hits - buffer_size)}" in (
                        metrics.splitlines()
                    ), metrics

                await eventually(dropped, timeout=10)
                assert "dropped an open" in server.log

            # When the database is reachable again
            proxy.restore()

            # Then the kept opens are recorded, with the first hit's time, and the server
            # is ready again: no restart
            async def recorded() -> dict[str, Any]:
                found: dict[str, Any] = (await client.execute(DELIVERY, {"id": str(delivery_id)}))[
                    "delivery"
                ]
                assert found["state"] == READ, found
                assert found["openCount"] == kept, found
                return found

            found = await eventually(recorded, timeout=20)
            read_at = dt.datetime.fromisoformat(found["readAt"])
            first_before, first_after = times[0]
            slack = dt.timedelta(milliseconds=50)
            assert first_before - slack <= read_at <= first_after + slack, (read_at, times[0])
            assert [e["type"] for e in found["events"]].count("opened") == kept
            assert (await http.get("/readyz")).status_code == 200
            assert server.process is not None
            assert server.process.poll() is None
            assert proxy.refused > 0, "the cut was never felt"
        finally:
            await client.close()
            await server.stop()
            dump_server_log(server)


# --------------------------------------------------------------------------- SIGTERM


async def test_given_opens_answered_but_not_yet_committed_when_the_server_gets_sigterm_then_it_commits_them_before_it_exits(  # noqa: E501
    db: Database, database_url: str, tmp_path: Path
) -> None:
    # Given a SENT delivery with a pixel, and a server
    seeded, pixel_path = await sent_delivery_with_pixel(db)
    (delivery_id,) = seeded.delivery_ids
    server = ServerProcess(
        tmp_path / "server",
        {"DATABASE_URL": database_url, "EMBEDDED_WORKER": "0", "SMTP_URL": "smtp://127.0.0.1:9"},
    )
    try:
        await server.start()
        # and a transaction of ours that holds the delivery (PostgreSQL: its row; SQLite:
        # the write lock), so the server's commit has to wait
        async with (
            httpx.AsyncClient(base_url=server.base_url, timeout=10) as http,
            db.write() as conn,
        ):
            await conn.execute(
                sa.select(deliveries.c.id).where(deliveries.c.id == delivery_id).with_for_update()
            )
            # When the pixel is hit five times, each answered at once
            for _ in range(5):
                await hit(http, pixel_path)
            # and the server is told to stop while their commit still waits
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)

            async def shutting_down() -> None:
                assert "Waiting for application shutdown" in server.log

            await eventually(shutting_down, timeout=10)
        # (our transaction ends here, and the commit goes through)

        # Then it exits cleanly (uvicorn ends by raising the signal it caught), once the
        # five opens are committed
        assert await asyncio.to_thread(server.process.wait, 20) == -signal.SIGTERM
        assert "Application shutdown complete" in server.log
        assert await opens_in_db(db, delivery_id) == (READ, 5)
    finally:
        await server.stop()
        dump_server_log(server)


# On both databases (no decorator): graceful shutdown does not depend on SKIP LOCKED.
async def test_given_a_worker_in_the_middle_of_sending_when_it_gets_sigterm_then_it_exits_0_promptly_and_every_job_it_held_is_done_or_given_back(  # noqa: E501
    db: Database, database_url: str, tmp_path: Path
) -> None:
    # Given 60 queued deliveries, and a worker with four sends held at MAIL FROM (and
    # four more claimed jobs waiting for an email slot). The lease is long: a job left
    # leased would not come back within this test.
    seeded = await seed_deliveries(db, people=6, comments=10)
    sink = HoldingSmtpSink(hold_after=0)
    await sink.start()
    env = worker_env(
        database_url,
        sink.port,
        tmp_path / "worker",
        EMAIL_CONCURRENCY="4",
        SMTP_POOL_SIZE="4",
        WORKER_BATCH_SIZE="8",
        WORKER_POLL_SECONDS="0.1",
        LEASE_SECONDS="300",
    )
    first = WorkerProcess(env, label="sigterm")
    second = WorkerProcess(env, label="after")
    try:
        await first.start()
        await sink.wait_for_waiting(4)
        assert await jobs_leased_by_pid(db, first.pid) == 8

        # When it gets SIGTERM mid-send (and the SMTP server then answers)
        loop = asyncio.get_running_loop()
        signalled = loop.time()
        first.terminate()
        sink.release()

        # Then it exits 0, promptly, having finished the sends in hand
        assert await first.wait(timeout=10) == 0, first.output
        assert loop.time() - signalled < 5
        assert "stopped" in first.output
        # ... and no job is left under its lease: each is done or handed back
        assert await jobs_leased_by_pid(db, first.pid) == 0
        counts = await state_counts(db, seeded.delivery_ids)
        assert counts[SENT] >= 8, counts
        assert counts[FAILED] == 0, counts
        assert len(sink.messages) == counts[SENT]

        # When a new worker runs, every delivery ends SENT (long before any lease ends)
        await second.start()
        await all_sent(db, seeded, timeout=30)
        assert set(received_ids(sink)) == set(seeded.message_ids.values())
        second.terminate()
        assert await second.wait() == 0, second.output
    finally:
        await first.stop()
        await second.stop()
        show_output([worker for worker in (first, second) if worker.process is not None])
        await sink.stop()
