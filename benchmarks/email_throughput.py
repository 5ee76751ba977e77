"""Emails per second: Beacon's workers against a bare aiosmtplib loop, in the same run.

    .venv/bin/python -m benchmarks.email_throughput [--count 2000]

All three send the same kind of message to a local aiosmtpd sink that runs in a process
of its own (`python -m tests.support.smtp_sink`), so that its CPU is not taken from the
sender's core:

  (a) baseline: a bare aiosmtplib loop, one reused connection, the messages built
      beforehand from the same database rows Beacon sends;
  (b) Beacon: one `python main.py worker` process;
  (c) Beacon: two worker processes.

(b) and (c) run on a fresh PostgreSQL database (created here, dropped at the end) with
every delivery and its job built beforehand; each is timed from the moment the worker
processes are started until every delivery is SENT. The workers run with the default
settings, except for the per-recipient rate limit (which would hold these back).

The baseline runs first and again last, and the mean of the two is the reference, so
that a change in the machine's load during the run (it is often shared) weighs on both
sides. Each line also shows the CPU time per email of the processes involved (from
/proc): the sender (the loop, or the worker processes), the sink, and PostgreSQL's
backends serving the workers.

The last line printed is the ratio of (c) to (a); the target is at least 0.7.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import asyncpg
import sqlalchemy as sa

from benchmarks.support import cpu_seconds, fresh_postgres
from channels.email.mime import build_mime
from common.settings import Settings
from db.deliveries import load_send_batch
from db.engine import Database
from db.tables import messages, metadata
from db.tasks import notification_content
from sending.compose import compose_email
from tests.support.builders import (
    MESSAGE_ID_DOMAIN,
    SECRET_KEY,
    due_comments,
)

ROOT = Path(__file__).resolve().parents[1]
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Result:
    label: str
    count: int
    seconds: float
    # CPU seconds spent while it ran, by kind of process.
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def line(self) -> str:
        per_email = ", ".join(
            f"{name} {seconds / self.count * 1000:.2f} ms" for name, seconds in self.cpu.items()
        )
        return (
            f"{self.label:<32} {self.count} emails in {self.seconds:6.2f} s = "
            f"{self.rate:6.1f} emails/s  (CPU per email: {per_email})"
        )


# --------------------------------------------------------------------------- the sink


@dataclass(frozen=True)
class Sink:
    port: int
    pid: int

    def cpu(self) -> float:
        return cpu_seconds([self.pid])


@contextlib.asynccontextmanager
async def smtp_sink() -> AsyncIterator[Sink]:
    """The test SMTP sink in a process of its own."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.smtp_sink",
        "--port",
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
        if not line.startswith("ready "):
            raise RuntimeError(f"the SMTP sink did not start: {line!r}")
        yield Sink(port=int(line.split()[1]), pid=process.pid)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()


# --------------------------------------------------------------------------- the database


async def empty(url: str) -> None:
    tables = ", ".join(f'"{table.name}"' for table in reversed(metadata.sorted_tables))
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


async def seed(url: str, count: int, people: int) -> None:
    """`count` queued email deliveries, due now: `people` contacts follow a task, and
    each of count/people comments notifies all of them (one message per delivery)."""
    db = Database(url)
    try:
        await _seed(db, count, people)
    finally:
        await db.dispose()


async def _seed(db: Database, count: int, people: int) -> None:
    await due_comments(db, people=people, comments=count // people)


async def queued_and_failed(conn: asyncpg.Connection) -> tuple[int, int]:
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE state = 'QUEUED') AS queued,"
        " count(*) FILTER (WHERE state = 'FAILED') AS failed FROM deliveries"
    )
    assert row is not None
    return int(row["queued"]), int(row["failed"])


# --------------------------------------------------------------------------- (a) the baseline


@dataclass(frozen=True)
class Prepared:
    message: EmailMessage
    sender: str
    recipients: list[str]


async def prepare_messages(url: str, settings: Settings) -> list[Prepared]:
    """The messages Beacon would send for the queued deliveries, built as it builds them."""
    db = Database(url)
    try:
        return await _prepare(db, settings)
    finally:
        await db.dispose()


async def _prepare(db: Database, settings: Settings) -> list[Prepared]:
    prepared: list[Prepared] = []
    async with db.read() as conn:
        ids = (await conn.execute(sa.select(messages.c.id).order_by(messages.c.id))).scalars()
        for message_id in list(ids):
            batch = await load_send_batch(conn, message_id)
            assert batch is not None
            content = await notification_content(
                conn, batch.notification.task_id, batch.notification.comment_id
            )
            recipients = [row.address for row in batch.pending]
            email = compose_email(settings, batch, content, recipients)
            prepared.append(Prepared(build_mime(email), email.envelope_from, recipients))
    return prepared


async def bare_aiosmtplib(prepared: list[Prepared]) -> Result:
    """Every message over one connection, one after the other."""
    async with smtp_sink() as sink:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, local_hostname="bench.local")
        sink_cpu, cpu = sink.cpu(), time.process_time()
        started = time.perf_counter()
        await client.connect()
        for item in prepared:
            await client.send_message(item.message, sender=item.sender, recipients=item.recipients)
        await client.quit()
        seconds = time.perf_counter() - started
        used = {"sender": time.process_time() - cpu, "sink": sink.cpu() - sink_cpu}
    return Result("bare aiosmtplib, 1 connection", len(prepared), seconds, used)


# --------------------------------------------------------------------------- (b), (c) Beacon


async def backend_pids(conn: asyncpg.Connection) -> list[int]:
    """PostgreSQL's backend processes for the other connections to this database."""
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return [int(row["pid"]) for row in rows]


async def beacon_workers(url: str, env: Mapping[str, str], workers: int, count: int) -> Result:
    """From starting `workers` worker processes until every delivery is SENT."""
    async with smtp_sink() as sink:
        sink_cpu = sink.cpu()
        seconds, used = await _run_workers(
            url, {**env, "SMTP_URL": f"smtp://127.0.0.1:{sink.port}"}, workers, count
        )
        used["sink"] = sink.cpu() - sink_cpu
    plural = "es" if workers > 1 else ""
    return Result(f"Beacon, {workers} worker process{plural}", count, seconds, used)


async def _run_workers(
    url: str, env: Mapping[str, str], workers: int, count: int
) -> tuple[float, dict[str, float]]:
    conn = await asyncpg.connect(url)
    logs = [Path(env["DATA_DIR"]) / f"worker-{workers}-{i}.log" for i in range(workers)]
    processes: list[asyncio.subprocess.Process] = []
    try:
        started = time.perf_counter()
        for log in logs:
            with log.open("wb") as output:
                processes.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        str(ROOT / "main.py"),
                        "worker",
                        cwd=ROOT,
                        env=dict(env),
                        stdout=output,
                        stderr=asyncio.subprocess.STDOUT,
                    )
                )
        # Fails when nothing moves for a minute (a broken worker, a sink that is down).
        last_queued, last_progress = count, started
        while True:
            queued, failed = await queued_and_failed(conn)
            now = time.perf_counter()
            if failed:
                raise RuntimeError(f"{failed} deliveries FAILED\n{_tails(logs)}")
            if queued == 0:
                used = {
                    "workers": cpu_seconds([process.pid for process in processes]),
                    # The workers' pooled connections (a connection closed before
                    # the end is not counted).
                    "postgres": cpu_seconds(await backend_pids(conn)),
                }
                return now - started, used
            if queued < last_queued:
                last_queued, last_progress = queued, now
            elif now - last_progress > 60:
                raise RuntimeError(f"{queued} deliveries stuck in QUEUED\n{_tails(logs)}")
            for process in processes:
                if process.returncode is not None:
                    raise RuntimeError(f"a worker exited with {process.returncode}\n{_tails(logs)}")
            # Polling the database the worker processes write.
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await conn.close()
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                process.kill()
                await process.wait()


def _tails(logs: list[Path], lines: int = 20) -> str:
    """The end of each worker's log, for an error message."""
    return "\n".join(
        f"--- {log.name}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        for log in logs
        if log.exists()
    )


# --------------------------------------------------------------------------- the run


async def run(count: int, people: int) -> None:
    with tempfile.TemporaryDirectory(prefix="beacon-bench-") as data_dir:
        async with fresh_postgres() as url:
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "DATA_DIR": data_dir,
                "SECRET_KEY": SECRET_KEY,
                "MAIL_FROM": f"Beacon <notifications@{MESSAGE_ID_DOMAIN}>",
                # 50 emails per recipient per 10 minutes would hold back most of these.
                "RECIPIENT_RATE_LIMIT": str(count * 10),
            }
            settings = Settings.from_env({**env, "SMTP_URL": "smtp://127.0.0.1:25"})
            await seed(url, count, people)
            prepared = await prepare_messages(url, settings)
            assert len(prepared) == count

            first = await bare_aiosmtplib(prepared)
            print(f"(a) {first.line()}", flush=True)
            one = await beacon_workers(url, env, 1, count)
            print(f"(b) {one.line()}", flush=True)
            await empty(url)
            await seed(url, count, people)
            two = await beacon_workers(url, env, 2, count)
            print(f"(c) {two.line()}", flush=True)
            last = await bare_aiosmtplib(prepared)
            print(f"(a) {last.line()}, again", flush=True)

    baseline = (first.rate + last.rate) / 2
    print(f"baseline, the mean of both (a) runs: {baseline:.1f} emails/s")
    print(f"ratio (1 worker / bare aiosmtplib): {one.rate / baseline:.2f}")
    print(f"ratio (2 workers / bare aiosmtplib): {two.rate / baseline:.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--count", type=int, default=2000, help="emails per run (2000)")
    parser.add_argument(
        "--people", type=int, default=50, help="distinct recipients (50); divides --count"
    )
    args = parser.parse_args(argv)
    if args.count <= 0 or args.people <= 0 or args.count % args.people:
        parser.error("--count must be a positive multiple of --people")
    print(
        f"{args.count} emails to a local aiosmtpd sink (its own process), "
        f"{os.cpu_count()} CPUs; Beacon on PostgreSQL",
        flush=True,
    )
    asyncio.run(run(args.count, args.people))


if __name__ == "__main__":
    main()
