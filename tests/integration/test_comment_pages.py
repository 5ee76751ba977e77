"""A task's comments paged backwards from the newest (`last`/`before`): the feed opens at
the newest comments, and a comment just added is on its first page however many there are."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from broadcaster import Broadcast
from starlette.requests import Request

from db.accounts import Viewer
from db.engine import Database
from live.feed import LiveFeed
from resolvers.context import Context, Services
from schema import schema
from tests.support.builders import add_comments, create_account, create_task, make_settings

PAGE = """
query Page($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  task(id: $id) {
    comments(first: $first, after: $after, last: $last, before: $before) {
      edges { cursor node { body } }
      pageInfo { hasNextPage endCursor hasPreviousPage startCursor }
    }
  }
}
"""


async def run(
    db: Database, tmp_path: Path, viewer: Viewer, task_id: uuid.UUID, **variables: Any
) -> Any:
    broadcast = Broadcast("memory://")
    context = Context(
        services=Services(
            db=db,
            broadcast=broadcast,
            settings=make_settings(tmp_path),
            wake_worker=lambda: None,
            live=LiveFeed(db, broadcast),
        ),
        request=Request({"type": "http", "headers": []}),
        response=None,
        viewer=viewer,
    )
    return await schema.execute(
        PAGE, variable_values={"id": str(task_id), **variables}, context_value=context
    )


async def sixty_comments(db: Database) -> tuple[Viewer, uuid.UUID]:
    account = await create_account(db)
    task_id = await create_task(db, account.account_id, subscriber_ids=[])
    await add_comments(
        db, account.account_id, task_id, author_id=account.owner_id, recipients=[], count=60
    )
    return Viewer(account.account_id, account.owner_id), task_id


def bodies(result: Any) -> list[str]:
    assert result.errors is None, result.errors
    return [edge["node"]["body"] for edge in result.data["task"]["comments"]["edges"]]


async def test_the_last_comments_come_oldest_first_with_a_cursor_to_the_earlier_ones(
    db: Database, tmp_path: Path
) -> None:
    # given
    viewer, task_id = await sixty_comments(db)

    # when: the newest 50, then the ones before them
    newest = await run(db, tmp_path, viewer, task_id, last=50)
    page = newest.data["task"]["comments"]
    earlier = await run(
        db, tmp_path, viewer, task_id, last=50, before=page["pageInfo"]["startCursor"]
    )

    # then
    assert bodies(newest) == [f"comment {i}" for i in range(10, 60)]
    assert page["pageInfo"]["hasPreviousPage"] is True
    assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]
    assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
    assert bodies(earlier) == [f"comment {i}" for i in range(10)]
    assert earlier.data["task"]["comments"]["pageInfo"]["hasPreviousPage"] is False


async def test_forward_pages_are_unchanged_and_say_nothing_of_earlier_ones(
    db: Database, tmp_path: Path
) -> None:
    viewer, task_id = await sixty_comments(db)

    result = await run(db, tmp_path, viewer, task_id, first=50)

    assert bodies(result) == [f"comment {i}" for i in range(50)]
    info = result.data["task"]["comments"]["pageInfo"]
    assert info["hasNextPage"] is True
    assert info["hasPreviousPage"] is False


async def test_paging_both_ways_at_once_or_with_a_bad_cursor_is_bad_input(
    db: Database, tmp_path: Path
) -> None:
    viewer, task_id = await sixty_comments(db)

    both = await run(db, tmp_path, viewer, task_id, first=5, last=5)
    bad_cursor = await run(db, tmp_path, viewer, task_id, last=5, before="not-a-cursor")
    too_many = await run(db, tmp_path, viewer, task_id, last=201)

    for result in (both, bad_cursor, too_many):
        assert result.errors is not None
        assert [e.extensions["code"] for e in result.errors] == ["BAD_USER_INPUT"]
    assert "not both" in both.errors[0].message
    assert "'last' must be between 0 and 200" in too_many.errors[0].message
