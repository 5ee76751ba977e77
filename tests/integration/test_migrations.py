"""The migrations build exactly the schema the code describes, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from db.engine import Database
from db.tables import metadata


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_the_migrated_database_matches_the_tables_in_code(db: Database) -> None:
    # given: the database fixture is migrated to head

    # when
    async with db.engine.connect() as conn:
        differences = await conn.run_sync(_differences)

    # then
    assert differences == []
