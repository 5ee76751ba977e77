"""My notifications (issue 14, point 5): the signed-in person's in-app notifications,
their unread count (live over a websocket), markRead and markAllRead."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.helpers import Beacon
from tests.e2e.team_support import add_teammate
from tests.support.graphql_client import GraphQLError

pytestmark = pytest.mark.e2e

MINE = """
query Mine($first: Int, $after: String, $unreadOnly: Boolean! = false) {
  viewer {
    unreadCount
    notifications(first: $first, after: $after, unreadOnly: $unreadOnly) {
      edges { cursor node { id state readAt taskId taskTitle commentId text } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

UNREAD = "subscription { unreadCount }"
MARK_READ = "mutation M($id: ID!) { markRead(deliveryId: $id) { id state } }"
MARK_ALL = "mutation { markAllRead }"


def texts(data: dict[str, Any]) -> list[str]:
    return [edge["node"]["text"] for edge in data["viewer"]["notifications"]["edges"]]


async def test_a_teammate_reads_their_notifications_and_the_count_follows_live(
    beacon: Beacon,
) -> None:
    # given a teammate watching their unread count
    mia = await add_teammate(beacon, "Mia")
    async with mia.client.subscribe(UNREAD) as counts:
        assert (await counts.next())["unreadCount"] == 0

        # when the owner creates a task for them and comments twice
        task_id = await beacon.create_task("Plan", [mia.person_id])
        await beacon.add_comment(task_id, "first draft")
        await beacon.add_comment(task_id, "second draft")

        # then the count rises to three, live
        await counts.until(lambda data: data["unreadCount"] == 3)

        # and the list shows them newest first, in pages (read from the rows that count
        # was made of: committed already)
        page: dict[str, Any] = await mia.client.execute(MINE, {"first": 2})
        assert page["viewer"]["unreadCount"] == 3
        assert texts(page) == ["second draft", "first draft"]
        assert page["viewer"]["notifications"]["pageInfo"]["hasNextPage"] is True
        rest = await mia.client.execute(
            MINE, {"after": page["viewer"]["notifications"]["pageInfo"]["endCursor"]}
        )
        assert texts(rest) == ["New task: Plan"]
        assert rest["viewer"]["notifications"]["pageInfo"]["hasNextPage"] is False
        newest = page["viewer"]["notifications"]["edges"][0]["node"]
        assert newest["taskId"] == task_id
        assert newest["taskTitle"] == "Plan"

        # when they read the newest one
        read = await mia.client.execute(MARK_READ, {"id": newest["id"]})

        # then it is READ and the count drops, live
        assert read["markRead"]["state"] == "READ"
        await counts.until(lambda data: data["unreadCount"] == 2)
        unread = await mia.client.execute(MINE, {"unreadOnly": True})
        assert texts(unread) == ["first draft", "New task: Plan"]

        # when they mark all read
        marked = await mia.client.execute(MARK_ALL)

        # then the other two were, and the count is zero, live
        assert marked["markAllRead"] == 2
        await counts.until(lambda data: data["unreadCount"] == 0)
        assert texts(await mia.client.execute(MINE, {"unreadOnly": True})) == []
        everything = await mia.client.execute(MINE)
        assert {e["node"]["state"] for e in everything["viewer"]["notifications"]["edges"]} == {
            "READ"
        }
        assert await mia.client.execute(MARK_ALL) == {"markAllRead": 0}


async def test_nobody_reads_another_persons_notifications(beacon: Beacon) -> None:
    # given a teammate with a notification
    mia = await add_teammate(beacon, "Mia")
    task_id = await beacon.create_task("Plan", [mia.person_id])

    # when the owner asks for the teammate's notifications or count
    for field in ("unreadCount", "notifications { edges { cursor } }"):
        with pytest.raises(GraphQLError) as refused:
            await beacon.client.execute(
                f"query T($id: ID!) {{ task(id: $id) {{ subscribers {{ {field} }} }} }}",
                {"id": task_id},
            )

        # then it is refused
        assert refused.value.codes == ["FORBIDDEN"]

    # and the owner, who created the task, has no notification of it
    mine = await beacon.client.execute(MINE)
    assert mine["viewer"]["unreadCount"] == 0
    assert texts(mine) == []
