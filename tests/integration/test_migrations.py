"""The migrations build exactly the schema the code describes, on both databases."""

from __future__ import annotations

import warnings
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from db.engine import Database
from db.tables import metadata

_INDEX_NAMES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index'",
    "postgresql": "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()",
}


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    with warnings.catch_warnings():
        # SQLite's reflection cannot read an index on an expression (lower(email)), so
        # the comparison leaves those out: the next test finds them by name.
        warnings.filterwarnings("ignore", message=".*expression-based index")
        return list(compare_metadata(context, metadata))


async def test_the_migrated_database_matches_the_tables_in_code(db: Database) -> None:
    # given: the database fixture is migrated to head

    # when
    async with db.engine.connect() as conn:
        differences = await conn.run_sync(_differences)

    # then
    assert differences == []


async def test_every_index_in_code_is_in_the_migrated_database(db: Database) -> None:
    wanted = {str(index.name) for table in metadata.tables.values() for index in table.indexes}

    async with db.engine.connect() as conn:
        found = set((await conn.execute(sa.text(_INDEX_NAMES[db.dialect_name]))).scalars())

    assert wanted <= found, sorted(wanted - found)
