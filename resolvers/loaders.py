"""DataLoaders: every list in a response is fetched in one statement per level, so a
task with 50 comments x 10 deliveries costs a constant number of queries."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.dataloader import DataLoader

from db import accounts as db_accounts
from db import deliveries as db_deliveries
from db import tasks as db_tasks
from db.engine import Database

T = TypeVar("T")


class Loaders:
    def __init__(self, db: Database, account_id: uuid.UUID) -> None:
        self._db = db
        self._account_id = account_id
        self.account = self._one(lambda conn, ids: db_accounts.accounts_by_ids(conn, ids))
        self.person = self._one(lambda conn, ids: db_accounts.people_by_ids(conn, account_id, ids))
        self.task = self._one(lambda conn, ids: db_tasks.tasks_by_ids(conn, account_id, ids))
        self.subscriber_ids = self._many(db_tasks.subscriber_ids_by_task)
        self.task_deliveries = self._many(db_deliveries.deliveries_by_task)
        self.comment_deliveries = self._many(db_deliveries.deliveries_by_comment)
        self.events = self._many(db_deliveries.events_by_delivery)

    def _one(
        self,
        fetch: Callable[
            [AsyncConnection, Sequence[uuid.UUID]], Awaitable[Mapping[uuid.UUID, Row[Any]]]
        ],
    ) -> DataLoader[uuid.UUID, Row[Any] | None]:
        async def load(keys: list[uuid.UUID]) -> list[Row[Any] | None]:
            async with self._db.read() as conn:
                found = await fetch(conn, keys)
            return [found.get(key) for key in keys]

        return DataLoader(load_fn=load)

    def _many(
        self,
        fetch: Callable[
            [AsyncConnection, Sequence[uuid.UUID]], Awaitable[Mapping[uuid.UUID, list[T]]]
        ],
    ) -> DataLoader[uuid.UUID, list[T]]:
        async def load(keys: list[uuid.UUID]) -> list[list[T]]:
            async with self._db.read() as conn:
                found = await fetch(conn, keys)
            return [found.get(key, []) for key in keys]

        return DataLoader(load_fn=load)
