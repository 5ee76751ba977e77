"""The task feed as the dashboard asks for it, run in-process through Beacon's schema,
from the database or from memory."""

from __future__ import annotations

import contextlib
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from starlette.requests import Request

from broadcast import create_broadcast
from common.settings import Settings
from db import accounts as db_accounts
from db import deliveries as db_deliveries
from db import tasks as db_tasks
from db.accounts import Viewer
from db.engine import Database
from live.feed import LiveFeed
from resolvers.context import Context, Services
from schema import schema

# The dashboard's feed (web/static/js/api.js): a task with its icon and subscribers, and
# its comments, each with its icon and every recipient's row and history.
FEED = """
query Feed($id: ID!) {
  task(id: $id) {
    id title createdAt
    subscribers { id name }
    deliveryStatus { ...Status }
    comments(first: 50) {
      edges { node { id body isSystem createdAt author { id name } deliveryStatus { ...Status } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
fragment Status on DeliveryStatus {
  state total queued sent failed read
  deliveries {
    id channel address state attempts queuedAt sentAt failedAt readAt openCount acceptedBy
    error { code message permanent }
    recipient { id name }
    events { type at detail }
  }
}
"""

# The database functions the feed reads through (resolvers/loaders.py, resolvers/queries.py).
_READS: list[tuple[Any, str]] = [
    (db_accounts, "accounts_by_ids"),
    (db_accounts, "people_by_ids"),
    (db_tasks, "tasks_by_ids"),
    (db_tasks, "subscriber_ids_by_task"),
    (db_tasks, "page_comments"),
    (db_deliveries, "deliveries_by_task"),
    (db_deliveries, "deliveries_by_comment"),
    (db_deliveries, "events_by_delivery"),
]


def context_for(db: Database, viewer: Viewer, settings: Settings) -> Context:
    broadcast = create_broadcast("memory://")
    services = Services(
        db=db,
        broadcast=broadcast,
        settings=settings,
        wake_worker=lambda: None,
        live=LiveFeed(db, broadcast),
    )
    return Context(
        services=services,
        request=Request({"type": "http", "headers": []}),
        response=None,
        viewer=viewer,
    )


async def run_feed(context: Context, task_id: uuid.UUID) -> dict[str, Any]:
    context.reset_loaders()
    result = await schema.execute(FEED, variable_values={"id": str(task_id)}, context_value=context)
    assert result.errors is None, result.errors
    assert result.data is not None
    return result.data


@contextlib.contextmanager
def counting(db: Database) -> Iterator[list[str]]:
    """The statements sent to the database while the block runs (not BEGIN/COMMIT)."""
    statements: list[str] = []

    def before(*args: Any) -> None:
        statement = str(args[2])
        if statement.split()[0].upper() not in {"BEGIN", "COMMIT", "ROLLBACK"}:
            statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", before)


async def timed(run: Callable[[], Awaitable[object]], seconds: float) -> list[float]:
    """Latencies (s) of `run`, back to back for about `seconds`."""
    values: list[float] = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop or len(values) < 5:
        started = time.perf_counter()
        await run()
        values.append(time.perf_counter() - started)
    return values


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[max(int(len(ordered) * 0.99) - 1, 0)] * 1000
    return f"{len(values) / sum(values):7.1f} feeds/s, p50 {p50:6.2f} ms, p99 {p99:6.2f} ms"


class _NoConnection:
    """What `Database.read()` yields in memory: the patched reads never use it."""


class MemoryDatabase:
    """Stands in for `Database` once every read the feed makes is in memory."""

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[_NoConnection]:
        yield _NoConnection()


def _key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return repr((args, sorted(kwargs.items())))


@dataclass
class Kept:
    """What the feed read: rows by id for the reads that take a list of ids (which ids
    share a DataLoader batch varies from run to run), answers by arguments otherwise."""

    by_id: dict[str, dict[Any, Any]] = field(default_factory=dict)
    by_arguments: dict[str, dict[str, Any]] = field(default_factory=dict)


@contextlib.contextmanager
def recorded_reads() -> Iterator[Kept]:
    """While the block runs, the feed's reads go to the database and their answers are
    kept."""
    kept = Kept()
    originals = [(module, name, getattr(module, name)) for module, name in _READS]
    for module, name, original in originals:

        async def keep(
            conn: Any, *args: Any, _original: Any = original, _name: str = name, **kwargs: Any
        ) -> Any:
            answer = await _original(conn, *args, **kwargs)
            if isinstance(answer, Mapping):
                kept.by_id.setdefault(_name, {}).update(answer)
            else:
                kept.by_arguments.setdefault(_name, {})[_key(args, kwargs)] = answer
            return answer

        setattr(module, name, keep)
    try:
        yield kept
    finally:
        for module, name, original in originals:
            setattr(module, name, original)


@contextlib.contextmanager
def reads_from_memory(kept: Kept) -> Iterator[None]:
    """While the block runs, the feed's reads are answered from `kept`, with no SQL."""
    originals = [(module, name, getattr(module, name)) for module, name in _READS]
    for module, name, _ in originals:

        async def answer(_conn: Any, *args: Any, _name: str = name, **kwargs: Any) -> Any:
            if _name in kept.by_id:
                rows = kept.by_id[_name]
                return {key: rows[key] for key in args[-1] if key in rows}
            return kept.by_arguments[_name][_key(args, kwargs)]

        setattr(module, name, answer)
    try:
        yield
    finally:
        for module, name, original in originals:
            setattr(module, name, original)
