"""What the fault tests share: worker processes (`python main.py worker`), deliveries
built directly in the database, polling another process's state with a bound, an SMTP
sink that can hold transactions, and the PostgreSQL server's own controls."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiosmtpd.smtp import SMTP, Envelope, Session

from common.domain import DeliveryState
from db.engine import Database
from db.tables import deliveries, delivery_events, messages, send_jobs
from tests.support.builders import (
    MESSAGE_ID_DOMAIN,
    SECRET_KEY,
    due_comments,
)
from tests.support.server import ROOT
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import eventually

_STARTED = re.compile(r"\bworker \S+:\d+:\w+ started\b")

# How often a test that polls for itself asks another process again.
POLL_SECONDS = 0.1

# --------------------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class Seeded:
    """Deliveries built directly in the database, each its own message and job."""

    account_id: uuid.UUID
    owner_id: uuid.UUID
    token: str
    task_id: uuid.UUID
    delivery_ids: list[uuid.UUID]
    # The Message-ID header of each delivery's message: what the SMTP sink must see.
    message_ids: dict[uuid.UUID, str]


async def seed_deliveries(db: Database, *, people: int, comments: int) -> Seeded:
    """`people` contacts following a task and `comments` comments on it, each notifying
    every contact: people x comments deliveries, due now."""
    due = await due_comments(db, people=people, comments=comments)
    account, task_id, notified = due.account, due.task_id, due.notified
    delivery_ids = [delivery_id for n in notified for delivery_id in n.delivery_ids]
    async with db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(deliveries.c.id, messages.c.header_message_id)
                .join(messages, messages.c.id == deliveries.c.message_id)
                .where(deliveries.c.id.in_(delivery_ids))
            )
        ).all()
    return Seeded(
        account_id=account.account_id,
        owner_id=account.owner_id,
        token=account.token,
        task_id=task_id,
        delivery_ids=delivery_ids,
        message_ids={row.id: row.header_message_id for row in rows},
    )


async def state_counts(db: Database, delivery_ids: Iterable[uuid.UUID]) -> Counter[str]:
    async with db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(deliveries.c.state, sa.func.count())
                .where(deliveries.c.id.in_(list(delivery_ids)))
                .group_by(deliveries.c.state)
            )
        ).all()
    return Counter({row[0]: int(row[1]) for row in rows})


async def queued_without_retry_event(db: Database, delivery_ids: Iterable[uuid.UUID]) -> int:
    """How many QUEUED deliveries have no attempt counted or no retry_scheduled event."""
    retried = (
        sa.select(delivery_events.c.delivery_id)
        .where(delivery_events.c.type == "retry_scheduled")
        .distinct()
    )
    async with db.read() as conn:
        return int(
            (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(deliveries)
                    .where(
                        deliveries.c.id.in_(list(delivery_ids)),
                        deliveries.c.state == DeliveryState.QUEUED.value,
                        sa.or_(deliveries.c.attempts < 1, deliveries.c.id.not_in(retried)),
                    )
                )
            ).scalar_one()
        )


async def jobs_leased_by_pid(db: Database, pid: int) -> int:
    """Jobs still leased to a worker process (its name is host:pid:random)."""
    async with db.read() as conn:
        return int(
            (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(send_jobs)
                    .where(send_jobs.c.lease_owner.like(f"%:{pid}:%"))
                )
            ).scalar_one()
        )


def received_ids(*sinks: SmtpSink) -> Counter[str]:
    """How often each Message-ID reached the sinks."""
    return Counter(
        message.message_id
        for sink in sinks
        for message in sink.messages
        if message.message_id is not None
    )


# --------------------------------------------------------------------------- worker processes


def worker_env(database_url: str, smtp_port: int, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a `python main.py worker` sending to a sink on loopback."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": SECRET_KEY,
        "MAIL_FROM": f"Beacon <notifications@{MESSAGE_ID_DOMAIN}>",
        "SMTP_TIMEOUT_SECONDS": "10",
        # These tests send many emails to few addresses; the per-recipient cap (50 per
        # 10 minutes) is tested elsewhere and must not hold these back.
        "RECIPIENT_RATE_LIMIT": "1000000",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


class WorkerProcess:
    """One `python main.py worker`, its output kept in memory (and shown on failure)."""

    def __init__(self, env: Mapping[str, str], label: str) -> None:
        self.env = dict(env)
        self.label = label
        self.process: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        # Set when the worker logs that it runs (imports done, about to claim jobs).
        self.started = asyncio.Event()
        self.started_at: float | None = None  # the event loop's time then
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def output(self) -> str:
        return "".join(self.lines)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "main.py"),
            "worker",
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read(self.process))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            text = line.decode(errors="replace")
            self.lines.append(text)
            # "worker host:pid:id started", in a JSON line or a plain one.
            if _STARTED.search(text) and not self.started.is_set():
                self.started_at = asyncio.get_running_loop().time()
                self.started.set()

    async def wait_started(self, timeout: float = 30) -> None:
        """Until the worker runs; fails at once if it exits first."""
        assert self.process is not None
        started = asyncio.create_task(self.started.wait())
        exited = asyncio.create_task(self.process.wait())
        try:
            async with asyncio.timeout(timeout):
                await asyncio.wait({started, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
            exited.cancel()
        if not self.started.is_set():
            await self.wait()
            raise RuntimeError(f"worker {self.label} exited early:\n{self.output}")

    def kill(self) -> None:
        """kill -9: no handler runs, nothing is cleaned up."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float = 30) -> int:
        """The exit status, once the process is gone and its output read."""
        assert self.process is not None
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
            if self._reader is not None:
                await self._reader
        return code

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time (cleanup)."""
        if self.process is None:
            return
        if self.process.returncode is None:
            self.terminate()
            try:
                await self.wait(timeout=15)
            except TimeoutError:
                self.kill()
        with contextlib.suppress(TimeoutError):
            await self.wait(timeout=15)


def show_output(workers: Iterable[WorkerProcess]) -> None:
    """Captured by pytest, and shown only when the test fails."""
    for worker in workers:
        sys.stderr.write(f"----- worker {worker.label} (pid {worker.pid}) -----\n{worker.output}\n")


# --------------------------------------------------------------------------- the SMTP sink


class _HoldingHandler:
    """The sink's handler, except that MAIL FROM waits while `hold` says so."""

    def __init__(self, inner: Any, sink: HoldingSmtpSink) -> None:
        self.inner = inner
        self.sink = sink

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        sink = self.sink
        if sink.held():
            sink.waiting += 1
            async with sink.changed:
                sink.changed.notify_all()
            try:
                await sink.released.wait()
            finally:
                sink.waiting -= 1
        reply: str = await self.inner.handle_MAIL(server, session, envelope, address, mail_options)
        return reply

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply: str = await self.inner.handle_RCPT(server, session, envelope, address, rcpt_options)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply: str = await self.inner.handle_DATA(server, session, envelope)
        if self.sink.reply_delay:
            # A real MTA's latency: the message is queued (kept), and the 250 comes a
            # moment later. A client that dies in between has been served all the same.
            await asyncio.sleep(self.sink.reply_delay)
        return reply


class HoldingSmtpSink(SmtpSink):
    """The test SMTP sink that, once `hold_after` messages arrived, holds every further
    transaction at MAIL FROM until `release()`: sends are then provably in flight. With
    `reply_delay`, each accepted message's 250 comes that many seconds after it is kept."""

    def __init__(
        self, *, hold_after: int | None = None, reply_delay: float = 0.0, port: int = 0
    ) -> None:
        super().__init__(port=port)
        self.hold_after = hold_after
        self.reply_delay = reply_delay
        self.waiting = 0
        self.changed = asyncio.Condition()
        self.released = asyncio.Event()
        self.handler = _HoldingHandler(self.handler, self)

    def held(self) -> bool:
        return (
            self.hold_after is not None
            and not self.released.is_set()
            and len(self.messages) >= self.hold_after
        )

    def release(self) -> None:
        self.released.set()

    async def wait_for_waiting(self, n: int, timeout: float = 15) -> None:
        """Until at least `n` transactions wait at MAIL FROM."""
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: self.waiting >= n)


# --------------------------------------------------------------------------- PostgreSQL


def _pg_cluster() -> tuple[str, str]:
    """(version, name) of the local cluster, e.g. ("15", "main")."""
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    return (versions[-1] if versions else "15", "main")


def can_restart_postgres() -> bool:
    return shutil.which("pg_ctlcluster") is not None and os.path.isdir("/etc/postgresql")


async def restart_postgres() -> None:
    """`pg_ctlcluster VERSION main restart` (fast shutdown: every connection is cut)."""
    version, name = _pg_cluster()
    process = await asyncio.create_subprocess_exec(
        "pg_ctlcluster",
        "--skip-systemctl-redirect",
        version,
        name,
        "restart",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"pg_ctlcluster restart failed:\n{output.decode(errors='replace')}")


async def postgres_ready() -> bool:
    process = await asyncio.create_subprocess_exec(
        "pg_isready",
        "-h",
        "127.0.0.1",
        "-p",
        "5432",
        "-q",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await process.wait() == 0


async def wait_for_postgres(timeout: float = 60) -> None:
    """Until pg_isready says PostgreSQL accepts connections (polled every 0.1 s)."""

    async def check() -> None:
        assert await postgres_ready(), "PostgreSQL is not accepting connections"

    await eventually(check, timeout=timeout)


async def ensure_postgres_up() -> None:
    """Make sure PostgreSQL runs again for the tests after this one."""
    if await postgres_ready():
        return
    with contextlib.suppress(TimeoutError, AssertionError):
        await wait_for_postgres(timeout=30)
        return
    version, name = _pg_cluster()
    process = await asyncio.create_subprocess_exec(
        "pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"
    )
    await process.wait()
    await wait_for_postgres(timeout=60)
