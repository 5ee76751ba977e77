"""DataLoaders: every list in a response is fetched in one statement per level, so a
task with 50 comments x 10 deliveries costs a constant number of queries."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.dataloader import DataLoader

from db import accounts as db_accounts
from db import deliveries as db_deliveries
from db import suppressions as db_suppressions
from db import tasks as db_tasks
from db.engine import Database
from db.records import StatusCount, SuppressionRecord

T = TypeVar("T")


class Loaders:
    def __init__(
        self,
        db: Database,
        account_id: uuid.UUID,
        history_cutoff: Callable[[], Awaitable[dt.datetime]],
    ) -> None:
        self._db = db
        self._account_id = account_id
        self._history_cutoff = history_cutoff
        self.account = self._one(lambda conn, ids: db_accounts.accounts_by_ids(conn, ids))
        self.person = self._one(lambda conn, ids: db_accounts.people_by_ids(conn, account_id, ids))
        self.task = self._one(lambda conn, ids: db_tasks.tasks_by_ids(conn, account_id, ids))
        self.subscriber_ids = self._many(db_tasks.subscriber_ids_by_task)
        self.task_deliveries = self._many(db_deliveries.deliveries_by_task)
        self.comment_deliveries = self._many(db_deliveries.deliveries_by_comment)
        self.all_task_deliveries = self._many(db_deliveries.deliveries_of_tasks)
        self.task_status_counts = self._status_counts()
        self.suppression = self._suppressions()
        self.events = self._many(db_deliveries.events_by_delivery)

    def _status_counts(self) -> DataLoader[uuid.UUID, list[StatusCount]]:
        """Each task's deliveries counted by state (db.deliveries.status_counts_by_task)."""

        async def load(keys: list[uuid.UUID]) -> list[list[StatusCount]]:
            # Counted in the database, so it counts only what the plan shows.
            since = await self._history_cutoff()
            async with self._db.read() as conn:
                found = await db_deliveries.status_counts_by_task(conn, keys, since=since)
            return [found.get(key, []) for key in keys]

        return DataLoader(load_fn=load)

    def _suppressions(self) -> DataLoader[tuple[str, str], SuppressionRecord | None]:
        """The suppression of each (channel, address), if there is one."""

        async def load(keys: list[tuple[str, str]]) -> list[SuppressionRecord | None]:
            async with self._db.read() as conn:
                found = await db_suppressions.find_many(conn, self._account_id, keys)
            return [found.get(key) for key in keys]

        return DataLoader(load_fn=load)

    def _one(
        self,
        fetch: Callable[[AsyncConnection, Sequence[uuid.UUID]], Awaitable[Mapping[uuid.UUID, T]]],
    ) -> DataLoader[uuid.UUID, T | None]:
        async def load(keys: list[uuid.UUID]) -> list[T | None]:
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
