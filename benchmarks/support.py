"""What the issue-6 benchmarks share: fresh databases, seeded deliveries, server
processes, and wrk as the load generator (Debian's `wrk` package)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from common.domain import Channel, DeliveryState, NotificationKind, PersonKind, Plan
from common.tokens import PIXEL, sign
from db import accounts as db_accounts
from db import tasks as db_tasks
from db.engine import Database
from db.migrate import upgrade_sync
from db.records import PersonRecord
from db.tables import deliveries, delivery_events, messages, notifications

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET_KEY = "benchmark-secret-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


# --------------------------------------------------------------------------- databases


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_postgres() -> AsyncIterator[str]:
    """A new, migrated PostgreSQL database, dropped at the end."""
    name = f"beacon_bench_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        url = sa.engine.make_url(ADMIN_URL).set(database=name).render_as_string(False)
        await asyncio.to_thread(upgrade_sync, url)
        yield url
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def fresh_sqlite() -> AsyncIterator[str]:
    """A new, migrated SQLite file in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="beacon-bench-") as directory:
        url = f"sqlite:///{Path(directory) / 'beacon.sqlite3'}"
        await asyncio.to_thread(upgrade_sync, url)
        yield url


@contextlib.asynccontextmanager
async def fresh_database(kind: str) -> AsyncIterator[str]:
    factory = fresh_postgres if kind == "postgres" else fresh_sqlite
    async with factory() as url:
        yield url


# --------------------------------------------------------------------------- seeding


@dataclass(frozen=True)
class Seeded:
    account_id: uuid.UUID
    person_id: uuid.UUID
    token: str
    task_id: uuid.UUID
    comment_ids: list[uuid.UUID]
    pixel_ids: list[str]
    # The delivery each pixel belongs to, in the same order.
    delivery_ids: list[uuid.UUID]


async def seed_comments(
    db: Database,
    *,
    comments: int,
    recipients: int,
    plan: Plan = Plan.PREMIUM,
    state: DeliveryState = DeliveryState.SENT,
    now: dt.datetime | None = None,
) -> Seeded:
    """An account, `recipients` contacts following a task, and `comments` comments each
    notifying all of them: one email message (with its pixel) per delivery, already in
    `state`, with one event each. Written in bulk, a transaction per 500 comments."""
    now = now or dt.datetime.now(dt.UTC)
    async with db.write() as conn:
        created = await db_accounts.create_account(
            conn, name="Bench", plan=plan, email="owner@bench.test"
        )
        people = [
            await db_accounts.add_person(
                conn,
                account_id=created.account_id,
                kind=PersonKind.CONTACT,
                name=f"Person {n}",
                email=f"person{n}@bench.test",
            )
            for n in range(recipients)
        ]
        task_id = await db_tasks.insert_task(
            conn,
            account_id=created.account_id,
            title="Benchmark",
            created_by=created.person_id,
            subscriber_ids=[person.id for person in people],
            now=now,
        )
    comment_ids: list[uuid.UUID] = []
    pixel_ids: list[str] = []
    delivery_ids: list[uuid.UUID] = []
    for start in range(0, comments, 500):
        async with db.write() as conn:
            rows = await _comment_rows(
                conn,
                created.account_id,
                created.person_id,
                task_id,
                people,
                range(start, min(start + 500, comments)),
                state,
                now,
            )
        comment_ids.extend(rows[0])
        pixel_ids.extend(rows[1])
        delivery_ids.extend(rows[2])
    await analyze(db)
    return Seeded(
        account_id=created.account_id,
        person_id=created.person_id,
        token=created.token,
        task_id=task_id,
        comment_ids=comment_ids,
        pixel_ids=pixel_ids,
        delivery_ids=delivery_ids,
    )


async def _comment_rows(
    conn: AsyncConnection,
    account_id: uuid.UUID,
    author_id: uuid.UUID,
    task_id: uuid.UUID,
    people: Sequence[PersonRecord],
    numbers: range,
    state: DeliveryState,
    now: dt.datetime,
) -> tuple[list[uuid.UUID], list[str], list[uuid.UUID]]:
    comment_ids, pixel_ids, delivery_ids = [], [], []
    notification_rows, message_rows, delivery_rows, event_rows = [], [], [], []
    for number in numbers:
        at = now + dt.timedelta(milliseconds=number)
        comment_id = await db_tasks.insert_comment(
            conn,
            account_id=account_id,
            task_id=task_id,
            author_id=author_id,
            body=f"Comment {number}",
            is_system=False,
            now=at,
        )
        comment_ids.append(comment_id)
        notification_id = uuid.uuid4()
        notification_rows.append(
            {
                "id": notification_id,
                "account_id": account_id,
                "task_id": task_id,
                "comment_id": comment_id,
                "kind": NotificationKind.COMMENT_ADDED.value,
                "created_at": at,
            }
        )
        for position, person in enumerate(people):
            message_id, delivery_id = uuid.uuid4(), uuid.uuid4()
            pixel_id = secrets.token_hex(16)
            pixel_ids.append(pixel_id)
            delivery_ids.append(delivery_id)
            message_rows.append(
                {
                    "id": message_id,
                    "account_id": account_id,
                    "notification_id": notification_id,
                    "channel": Channel.EMAIL.value,
                    "header_message_id": f"<{uuid.uuid4().hex}@bench.test>",
                    "pixel_id": pixel_id,
                    "created_at": at,
                }
            )
            delivery_rows.append(
                {
                    "id": delivery_id,
                    "account_id": account_id,
                    "notification_id": notification_id,
                    "message_id": message_id,
                    "recipient_id": person.id,
                    "position": position,
                    "channel": Channel.EMAIL.value,
                    "address": person.email,
                    "state": state.value,
                    "attempts": 1,
                    "queued_at": at,
                    "sent_at": at if state is not DeliveryState.QUEUED else None,
                    "accepted_by": "mx.bench.test",
                    "open_count": 0,
                }
            )
            event_rows.append(
                {"delivery_id": delivery_id, "type": "sent", "at": at, "detail": "250 ok"}
            )
    await conn.execute(notifications.insert(), notification_rows)
    await conn.execute(messages.insert(), message_rows)
    await conn.execute(deliveries.insert(), delivery_rows)
    await conn.execute(delivery_events.insert(), event_rows)
    return comment_ids, pixel_ids, delivery_ids


async def analyze(db: Database) -> None:
    """Fresh statistics, as autovacuum would have them on a database in use."""
    async with db.engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql("ANALYZE")


async def settle(db: Database) -> None:
    """After seeding: fresh statistics and, on PostgreSQL, a vacuum and a checkpoint, so
    that the database's own catching up (autovacuum, a checkpoint of the seeding's
    writes) does not fall into the first measured runs."""
    async with db.engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        if db.is_sqlite:
            # (SQLite checkpoints its WAL itself, every 1,000 pages.)
            await autocommit.exec_driver_sql("ANALYZE")
        else:
            await autocommit.exec_driver_sql("VACUUM (ANALYZE)")
            await autocommit.exec_driver_sql("CHECKPOINT")


async def server_metrics(base_url: str) -> dict[str, float]:
    """A Beacon server's /metrics, sample by sample ('name{labels}': value)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{base_url}/metrics", timeout=10)).text
    return {
        name: float(value)
        for name, _, value in (line.rpartition(" ") for line in text.splitlines())
        if name and not name.startswith("#")
    }


def pixel_paths(pixel_ids: Sequence[str]) -> list[str]:
    return [f"/p/{sign(pixel_id, SECRET_KEY.encode(), PIXEL)}.gif" for pixel_id in pixel_ids]


# --------------------------------------------------------------------------- processes


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of these processes so far (0 where /proc cannot tell)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        # After "pid (command)": utime and stime are the 12th and 13th fields.
        fields = stat.rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


@dataclass
class Process:
    """A child process serving HTTP on `port`, its output in `log`."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


@contextlib.asynccontextmanager
async def serving(
    command: Sequence[str], env: Mapping[str, str], port: int, log: Path
) -> AsyncIterator[Process]:
    """Start `command` and wait until GET /healthz (or any answer on /) responds."""
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited
            list(command), cwd=ROOT, env=dict(env), stdout=output, stderr=subprocess.STDOUT
        )
    running = Process(process, port, log)
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                if process.poll() is not None:
                    raise RuntimeError(f"{command} exited:\n{tail(log)}")
                try:
                    await http.get(f"{running.base_url}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"{command} did not start:\n{tail(log)}")
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.to_thread(process.wait), timeout=20)
            except TimeoutError:
                process.kill()
                await asyncio.to_thread(process.wait)


def beacon_env(database_url: str, port: int, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of `python main.py serve` for a benchmark: no worker, no mail
    catcher, default settings otherwise."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": SECRET_KEY,
        "EMBEDDED_WORKER": "0",
        "SMTP_URL": "smtp://127.0.0.1:9",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        **extra,
    }


def beacon_command() -> list[str]:
    return [sys.executable, str(ROOT / "main.py"), "serve"]


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


_REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(ms|s|m)")
_ERRORS = re.compile(
    r"Non-2xx or 3xx responses: (\d+)"
    r"|Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    return found


async def run_wrk(
    url: str,
    *,
    seconds: float,
    connections: int = 64,
    threads: int = 2,
    script: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> WrkResult:
    command = [
        require_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
    ]
    if script is not None:
        command += ["-s", str(script)]
    process = await asyncio.create_subprocess_exec(
        *command,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    output = (await process.communicate())[0].decode()
    match = _REQUESTS.search(output)
    if match is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    unit = {"ms": 0.001, "s": 1.0, "m": 60.0}[match.group(3)]
    errors = 0
    for found in _ERRORS.finditer(output):
        errors += sum(int(group) for group in found.groups() if group)
    return WrkResult(int(match.group(1)), float(match.group(2)) * unit, errors)
