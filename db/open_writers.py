"""How a batch of opens (pixel/recorder.py) reaches the database in as few waits as possible.

Under load the event loop is busy with requests, and every await of a database answer
waits its turn behind them: a batch that takes five round trips (checkout, BEGIN, the
statements, COMMIT) commits five loop turns later. So:

- PostgreSQL: a connection of the recorder's own, in autocommit, and one statement per
  batch (db/opens.py): one round trip, durable when it returns.
- SQLite: a thread of the recorder's own with its own sqlite3 connection does the whole
  transaction in one call: one hop to the thread and one back. SQLite's own lock keeps
  it in line with the process's other writers (busy_timeout waits, in that thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from db.engine import Database
from db.opens import Open, Recorded, record_opens_asyncpg, record_opens_sqlite

# How long a batch may take before its opens go to the outage buffer: a pixel is answered
# within this, whatever the database does (a cut connection that never answers included).
WRITE_TIMEOUT_SECONDS = 5.0


class BatchWriter(Protocol):
    async def write(self, opens: Sequence[Open]) -> Recorded: ...

    async def aclose(self) -> None: ...


def writer_for(db: Database) -> BatchWriter:
    if db.is_sqlite:
        return SqliteWriter(db)
    return AutocommitWriter(db)


class AutocommitWriter:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: AsyncConnection | None = None
        self._driver: Any = None

    async def write(self, opens: Sequence[Open]) -> Recorded:
        try:
            async with asyncio.timeout(WRITE_TIMEOUT_SECONDS):
                if self._driver is None:
                    self._driver = await self._connect()
                return await record_opens_asyncpg(self._driver, opens)
        except BaseException:
            # The connection may be gone (a restart, a network cut): take a fresh one.
            await self.aclose()
            raise

    async def _connect(self) -> Any:
        conn = await self.db.engine.connect()
        self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        # asyncpg itself: SQLAlchemy has nothing to add to one statement.
        driver = (await self._conn.get_raw_connection()).driver_connection
        assert driver is not None
        # One plan for every batch: left to choose, PostgreSQL may settle on planning
        # each batch afresh (after a few small ones at start-up), which costs more than
        # running a small batch. This connection never goes back to the pool (`aclose`
        # invalidates it), so the setting stays with it.
        await driver.execute("SET plan_cache_mode = force_generic_plan")
        return driver

    async def aclose(self) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()


class SqliteWriter:
    def __init__(self, db: Database) -> None:
        path = db.url.database
        assert path, "a SQLite database file"
        self.path = path
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pixel-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def write(self, opens: Sequence[Open]) -> Recorded:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._write, list(opens))

    def _write(self, opens: list[Open]) -> Recorded:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            recorded = record_opens_sqlite(conn, opens)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return recorded

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # As db/engine.py sets up its own connections, but for foreign keys: this
            # connection changes no key column of a delivery, and the events it adds
            # have no foreign key (ADR 0014), so there is nothing for them to check.
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            for pragma in (
                "PRAGMA journal_mode=WAL",
                "PRAGMA busy_timeout=10000",
                "PRAGMA synchronous=NORMAL",
            ):
                conn.execute(pragma)
            self._conn = conn
        return self._conn

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
