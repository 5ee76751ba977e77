"""Beacon as a deployment runs it: two API nodes and two send workers, each its own
process, on one PostgreSQL database, with Redis carrying the broadcast between them."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import (
    ADD_COMMENT,
    ADD_CONTACT,
    CREATE_TASK,
    UpdateLog,
    caused_by_comment,
    html_body,
    pixel_urls,
)
from tests.scale.cluster import Cluster, poll_until, running_cluster
from tests.support.graphql_client import GraphQLClient
from tests.support.reading import READ_AS_PERSON
from tests.support.redis_service import require_redis

pytestmark = [pytest.mark.scale, pytest.mark.postgres]

UPDATES = """
subscription Updates($taskId: ID, $after: String) {
  deliveryUpdated(taskId: $taskId, after: $after) {
    cursor
    taskId
    commentId
    delivery { id address state readAt }
    status { state total sent read }
  }
}
"""


@pytest.fixture
async def cluster(database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    redis_url = await require_redis()
    async with running_cluster(
        tmp_path, database_url=database_url, broadcast_url=redis_url
    ) as running:
        yield running


async def add_contacts(client: GraphQLClient, count: int) -> list[str]:
    ids = []
    for number in range(count):
        data = await client.execute(
            ADD_CONTACT, {"name": f"Contact {number}", "email": f"c{number}@example.test"}
        )
        ids.append(str(data["addPerson"]["id"]))
    return ids


async def create_task(client: GraphQLClient, subscriber_ids: list[str]) -> str:
    data = await client.execute(CREATE_TASK, {"title": "Ship v2", "subscriberIds": subscriber_ids})
    return str(data["createTask"]["id"])


async def add_comment(client: GraphQLClient, task_id: str, body: str) -> dict[str, Any]:
    data = await client.execute(ADD_COMMENT, {"taskId": task_id, "body": body})
    comment: dict[str, Any] = data["addComment"]
    return comment


async def queue_empty(cluster: Cluster, node: int) -> bool:
    samples = await cluster.metrics(node)
    return all(
        samples[f'beacon_send_queue_jobs{{state="{state}"}}'] == 0
        for state in ("due", "leased", "scheduled")
    )


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_given_two_nodes_when_a_pixel_is_hit_on_node_b_then_a_subscriber_on_node_a_sees_the_delivery_read(  # noqa: E501
    cluster: Cluster,
) -> None:
    # Given a task with one contact, and a subscriber to it on node A
    node_a, node_b = cluster.client(0), cluster.client(1)
    (ann,) = await add_contacts(node_a, 1)
    task_id = await create_task(node_a, [ann])
    async with node_a.subscribe(UPDATES, {"taskId": task_id}) as subscription:
        log = UpdateLog(subscription)

        # When a comment is added through node B and a worker sends it
        comment, _ = await log.trigger(
            lambda: add_comment(node_b, task_id, "Release notes are ready"), caused_by_comment
        )
        sent = await log.until(
            lambda u: u["commentId"] == comment["id"] and u["delivery"]["state"] == "SENT"
        )
        delivery_id = sent["delivery"]["id"]
        received = await cluster.sink.wait_for_messages(2)  # the task's email, the comment's
        (email,) = [m for m in received if "Release notes are ready" in m.raw.decode()]

        # and the recipient opens it: the pixel in the email is served by node B
        (pixel_url,) = pixel_urls(html_body(email.message))
        assert pixel_url.startswith(cluster.nodes[1].base_url)
        async with httpx.AsyncClient(headers=READ_AS_PERSON) as http:
            assert (await http.get(pixel_url)).status_code == 200

        # Then the subscriber on node A sees it READ
        read = await log.until_state(delivery_id, "READ")
        assert read["delivery"]["readAt"] is not None
        assert read["status"]["read"] == 1


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_given_two_workers_when_comments_are_added_through_node_b_then_each_email_is_sent_exactly_once(  # noqa: E501
    cluster: Cluster,
) -> None:
    # Given a task with five contacts, whose own emails went out
    node_a, node_b = cluster.client(0), cluster.client(1)
    contacts = await add_contacts(node_a, 5)
    task_id = await create_task(node_a, contacts)
    await cluster.sink.wait_for_messages(5)

    # When ten comments are added through node B at once, for two workers to share
    await asyncio.gather(*(add_comment(node_b, task_id, f"Comment {n}") for n in range(10)))

    # Then every email arrives, and once the queue is empty (nothing is being sent or
    # waiting any more, as node A's /metrics says) each Message-ID arrived exactly once
    await cluster.sink.wait_for_messages(5 + 10 * 5, timeout=30)
    await poll_until(lambda: queue_empty(cluster, 0), "the send queue to empty")
    by_message_id = Counter(message.message_id for message in cluster.sink.messages)
    assert len(by_message_id) == 55
    assert set(by_message_id.values()) == {1}, by_message_id.most_common(3)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_given_a_cursor_from_node_a_when_the_client_resumes_on_node_b_then_it_gets_what_it_missed_once_and_then_the_live_stream(  # noqa: E501
    cluster: Cluster,
) -> None:
    # Given a subscriber on node A that saw a comment's two deliveries SENT
    node_a, node_b = cluster.client(0), cluster.client(1)
    contacts = await add_contacts(node_a, 2)
    task_id = await create_task(node_a, contacts)
    async with node_a.subscribe(UPDATES, {"taskId": task_id}) as subscription:
        log = UpdateLog(subscription)
        first, _ = await log.trigger(
            lambda: add_comment(node_a, task_id, "First"), caused_by_comment
        )
        await log.until(
            lambda _: (
                sum(
                    u["commentId"] == first["id"] and u["delivery"]["state"] == "SENT"
                    for u in log.updates
                )
                == 2
            )
        )
        cursor = log.updates[-1]["cursor"]
        seen_before = {u["delivery"]["id"] for u in log.updates}

    # When, while it is away, two more comments are added and sent
    missed = [await add_comment(node_b, task_id, f"Missed {n}") for n in range(2)]
    missed_ids = {comment["id"] for comment in missed}

    async def missed_sent() -> bool:
        data = await node_b.execute(COMMENT_STATES, {"id": task_id})
        edges = data["task"]["comments"]["edges"]
        sent = [e["node"]["deliveryStatus"]["sent"] for e in edges if e["node"]["id"] in missed_ids]
        return sent == [2, 2]

    await poll_until(missed_sent, "the missed comments to be sent")

    # and it subscribes again, on node B, with its last cursor
    async with node_b.subscribe(UPDATES, {"taskId": task_id, "after": cursor}) as subscription:
        resumed = UpdateLog(subscription)

        # Then it first receives the four deliveries it missed, as they are now, once each
        await resumed.until(lambda _: len(resumed.updates) >= 4)
        replayed = resumed.updates[:4]
        assert {u["commentId"] for u in replayed} == missed_ids
        assert [u["delivery"]["state"] for u in replayed] == ["SENT"] * 4
        assert len({u["delivery"]["id"] for u in replayed}) == 4
        assert not seen_before & {u["delivery"]["id"] for u in replayed}

        # And then the live stream: a new comment's updates, and nothing it had already
        latest = await add_comment(node_a, task_id, "Live again")
        await resumed.until(
            lambda u: u["commentId"] == latest["id"] and u["delivery"]["state"] == "SENT"
        )
        assert {u["commentId"] for u in resumed.updates} == missed_ids | {latest["id"]}
        assert len({u["cursor"] for u in resumed.updates}) == len(resumed.updates)


COMMENT_STATES = """
query CommentStates($id: ID!) {
  task(id: $id) {
    comments(first: 50) { edges { node { id deliveryStatus { sent } } } }
  }
}
"""
