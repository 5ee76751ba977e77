"""A task's activity feed costs a constant number of SQL statements, however many
comments and deliveries it shows (DataLoaders in resolvers/loaders.py)."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broadcaster import Broadcast
from sqlalchemy import event
from starlette.requests import Request

from db.accounts import Viewer
from db.engine import Database
from live.feed import LiveFeed
from resolvers.context import Context, Services
from schema import schema
from tests.support.builders import (
    add_comments,
    add_people,
    create_account,
    create_task,
    make_settings,
    notify_task_created,
)

FEED = """
query Feed($id: ID!) {
  task(id: $id) {
    title
    subscribers { name }
    deliveryStatus { state }
    comments(first: 50) {
      edges {
        node {
          body
          author { name }
          deliveryStatus {
            state
            total
            deliveries {
              address
              state
              recipient { name }
              events { type at }
            }
          }
        }
      }
    }
  }
}
"""

# Transaction control the driver needs around each read; not a query of its own.
_CONTROL = {"BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"}


@dataclass(frozen=True)
class Feed:
    viewer: Viewer
    task_id: uuid.UUID


async def build_feed(db: Database, *, comments: int, recipients: int) -> Feed:
    """A PAID account's task: `recipients` subscribers notified of the task and of each of
    the owner's `comments` comments."""
    account = await create_account(db)
    people = await add_people(
        db, account.account_id, [f"r{i}@example.test" for i in range(recipients)]
    )
    task_id = await create_task(
        db,
        account.account_id,
        subscriber_ids=[account.owner_id, *(p.id for p in people)],
        created_by=account.owner_id,
    )
    await notify_task_created(db, account.account_id, task_id, recipients=people)
    await add_comments(
        db,
        account.account_id,
        task_id,
        author_id=account.owner_id,
        recipients=people,
        count=comments,
    )
    return Feed(viewer=Viewer(account.account_id, account.owner_id), task_id=task_id)


@contextmanager
def recording(db: Database) -> Iterator[list[str]]:
    """Every statement sent to the database while the block runs."""
    statements: list[str] = []

    def before_cursor_execute(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", before_cursor_execute)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", before_cursor_execute)


def queries(statements: list[str]) -> list[str]:
    return [s for s in statements if s.strip().upper() not in _CONTROL]


def by_table(statements: list[str]) -> Counter[str]:
    """How many queries read each table (the first table after FROM)."""
    counts: Counter[str] = Counter()
    for statement in queries(statements):
        match = re.search(r"\bFROM\s+\"?(\w+)", statement)
        assert match is not None, statement
        counts[match.group(1)] += 1
    return counts


async def run_query(
    db: Database,
    viewer: Viewer,
    tmp_path: Path,
    query: str,
    variables: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The query's data as `viewer` gets it, and every statement it sent."""
    broadcast = Broadcast("memory://")
    services = Services(
        db=db,
        broadcast=broadcast,
        settings=make_settings(tmp_path),
        wake_worker=lambda: None,
        live=LiveFeed(db, broadcast),
    )
    context = Context(
        services=services,
        request=Request({"type": "http", "headers": []}),
        response=None,
        viewer=viewer,
    )
    with recording(db) as statements:
        result = await schema.execute(query, variable_values=variables, context_value=context)
    assert result.errors is None, result.errors
    assert result.data is not None
    return result.data, statements


async def run_feed(db: Database, feed: Feed, tmp_path: Path) -> tuple[dict[str, Any], list[str]]:
    return await run_query(db, feed.viewer, tmp_path, FEED, {"id": str(feed.task_id)})


def check_shape(data: dict[str, Any], *, comments: int, recipients: int) -> None:
    task = data["task"]
    assert task["title"] == "Ship v2"
    assert len(task["subscribers"]) == recipients + 1
    assert task["deliveryStatus"] == {"state": "QUEUED"}
    edges = task["comments"]["edges"]
    assert len(edges) == comments
    for i, edge in enumerate(edges):
        node = edge["node"]
        assert node["body"] == f"comment {i}"
        assert node["author"] == {"name": "Owner"}
        status = node["deliveryStatus"]
        assert (status["state"], status["total"]) == ("QUEUED", recipients)
        assert sorted(d["address"] for d in status["deliveries"]) == sorted(
            f"r{j}@example.test" for j in range(recipients)
        )
        for d in status["deliveries"]:
            assert d["state"] == "QUEUED"
            assert d["recipient"]["name"] == f"p{d['address'][1:].split('@')[0]}"
            assert [e["type"] for e in d["events"]] == ["queued"]


async def test_a_task_feed_costs_the_same_few_statements_for_5_or_50_comments(
    db: Database, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    # given: a small feed and a large one
    small = await build_feed(db, comments=5, recipients=2)
    large = await build_feed(db, comments=50, recipients=10)
    await db.ping()  # the pool is warm: connecting is not counted

    # when
    small_data, small_statements = await run_feed(db, small, tmp_path)
    large_data, large_statements = await run_feed(db, large, tmp_path)

    # then: both answers are complete
    check_shape(small_data, comments=5, recipients=2)
    check_shape(large_data, comments=50, recipients=10)
    # and cost the same few queries: one per table and level, never one per row
    small_tables, large_tables = by_table(small_statements), by_table(large_statements)
    record_property("small_statements", len(small_statements))
    record_property("small_queries", dict(small_tables))
    record_property("large_statements", len(large_statements))
    record_property("large_queries", dict(large_tables))
    expected = {
        "tasks": 1,
        "accounts": 1,
        "task_subscribers": 1,
        "comments": 1,
        "deliveries": 2,  # the task's own, and all comments' at once
        "delivery_events": 1,
    }
    for tables in (small_tables, large_tables):
        assert {table: n for table, n in tables.items() if table != "people"} == expected
        # People appear at three levels (subscribers, authors, recipients). Which of those
        # loads share a batch depends on which earlier query answered first, so this one
        # count may differ between two runs of the same query; it never grows with rows.
        assert 1 <= tables["people"] <= 3
    for statements in (small_statements, large_statements):
        assert len(queries(statements)) <= 10
        # SQLite adds one BEGIN per read connection (each loader batch reads on its own)
        assert len(statements) <= 20
