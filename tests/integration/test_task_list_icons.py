"""The task list's icons (`Task.overallStatus`) cost one query for the whole page, however
many tasks, comments and deliveries it covers (issue 13, item 15)."""

from __future__ import annotations

import uuid
from pathlib import Path

from db.accounts import Viewer
from db.engine import Database
from tests.integration.test_batching import by_table, queries, run_query
from tests.support.builders import (
    add_comments,
    add_people,
    create_account,
    create_task,
    notify_task_created,
)

TASK_LIST = """
query Tasks {
  tasks(first: 50) {
    edges { node { title overallStatus { state total queued heldBack } } }
  }
}
"""


async def build_list(db: Database, *, tasks: int, comments: int) -> Viewer:
    """A PAID account with `tasks` tasks, each notified to two people at its creation and
    at each of `comments` comments."""
    account = await create_account(db, owner_email=f"owner-{uuid.uuid4().hex}@example.test")
    people = await add_people(db, account.account_id, ["a@example.test", "b@example.test"])
    for n in range(tasks):
        task_id = await create_task(
            db, account.account_id, subscriber_ids=[p.id for p in people], title=f"task {n}"
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
    return Viewer(account.account_id, account.owner_id)


async def test_the_task_lists_icons_cost_the_same_few_queries_for_3_or_30_tasks(
    db: Database, tmp_path: Path
) -> None:
    # given: a short list and a long one, with comments
    short = await build_list(db, tasks=3, comments=1)
    long = await build_list(db, tasks=30, comments=4)
    await db.ping()

    # when
    short_data, short_statements = await run_query(db, short, tmp_path, TASK_LIST)
    long_data, long_statements = await run_query(db, long, tmp_path, TASK_LIST)

    # then: each icon counts the task's own deliveries and its comments'
    for data, tasks, comments in ((short_data, 3, 1), (long_data, 30, 4)):
        edges = data["tasks"]["edges"]
        assert len(edges) == tasks
        total = 2 * (1 + comments)
        for edge in edges:
            assert edge["node"]["overallStatus"] == {
                "state": "QUEUED",
                "total": total,
                "queued": total,
                "heldBack": 0,
            }
    # and both lists cost the same queries: the page, the account, one count for all
    expected = {"tasks": 1, "accounts": 1, "deliveries": 1}
    assert by_table(short_statements) == expected
    assert by_table(long_statements) == expected
    assert len(queries(long_statements)) == 3
