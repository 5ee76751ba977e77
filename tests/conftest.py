"""Shared fixtures. Every data test runs on SQLite and on PostgreSQL (`database_url`).

A test that needs PostgreSQL skips when it is not reachable, except in CI (CI=true),
where a missing service is a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from db.engine import Database
from db.migrate import upgrade_sync
from db.tables import metadata
from tests.support.services import require_service

pytest_plugins = ["tests.support.fixtures_smtp"]

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _postgres_error() -> str | None:
    try:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        return f"{type(error).__name__}: {error}"
    await conn.close()
    return None


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str | None]:
    """A fresh, migrated PostgreSQL database for this test session (None if unreachable)."""
    error = asyncio.run(_postgres_error())
    if error is not None:
        yield None
        return
    name = f"beacon_test_{uuid.uuid4().hex[:10]}"
    base = sa.engine.make_url(POSTGRES_ADMIN_URL)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    upgrade_sync(url)
    try:
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets a copy (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    upgrade_sync(f"sqlite:///{path}")
    return path


async def _truncate(url: str) -> None:
    tables = ", ".join(f'"{table.name}"' for table in reversed(metadata.sorted_tables))
    conn = await asyncpg.connect(sa.engine.make_url(url).render_as_string(hide_password=False))
    try:
        await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_database: str | None,
) -> str:
    """The URL of an empty, migrated database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "beacon.sqlite3"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    if postgres_database is None:
        require_service("PostgreSQL", f"cannot connect to {POSTGRES_ADMIN_URL}")
    assert postgres_database is not None
    await _truncate(postgres_database)
    return postgres_database


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.dispose()
