"""What operators get from a running server: Prometheus metrics, JSON request logs with
request ids, and limits on what one document or connection may ask for. And a
subscription resumed from its cursor on a single SQLite node."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.e2e.helpers import (
    ADD_COMMENT,
    ADD_CONTACT,
    CREATE_TASK,
    GatedSmtpSink,
    UpdateLog,
    caused_by_comment,
    create_account,
)
from tests.scale.cluster import poll_until
from tests.support.graphql_client import LEGACY_WS, TRANSPORT_WS, GraphQLClient, GraphQLError
from tests.support.server import ServerProcess

pytestmark = pytest.mark.scale

UPDATES = """
subscription Updates($taskId: ID, $after: String) {
  deliveryUpdated(taskId: $taskId, after: $after) {
    cursor
    commentId
    delivery { id state }
  }
}
"""


class Node:
    def __init__(self, server: ServerProcess, client: GraphQLClient, sink: GatedSmtpSink) -> None:
        self.server = server
        self.client = client
        self.sink = sink

    async def metrics(self) -> dict[str, float]:
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"{self.server.base_url}/metrics")).text
        return {
            name: float(value)
            for name, _, value in (
                line.rpartition(" ") for line in text.splitlines() if not line.startswith("#")
            )
            if name
        }

    async def metric_names(self) -> set[str]:
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"{self.server.base_url}/metrics")).text
        return set(re.findall(r"^# TYPE (\S+)", text, re.MULTILINE))


@pytest.fixture
def server_env() -> dict[str, str]:
    return {}


@pytest.fixture
async def node(tmp_path: Path, server_env: dict[str, str]) -> AsyncIterator[Node]:
    async with GatedSmtpSink() as sink:
        server = ServerProcess(
            tmp_path / "server",
            {
                "DATABASE_URL": f"sqlite:///{tmp_path / 'beacon.sqlite3'}",
                "SMTP_URL": sink.url,
                "WS_MAX_SUBSCRIPTIONS": "2",
                **server_env,
            },
        )
        async with server:
            account = await create_account(
                server.env, name="Acme", plan="PREMIUM", email="owner@acme.test"
            )
            client = GraphQLClient(server.base_url, account.token)
            try:
                yield Node(server, client, sink)
            finally:
                await client.close()


async def add_contact_and_task(client: GraphQLClient) -> str:
    ann = await client.execute(ADD_CONTACT, {"name": "Ann", "email": "ann@example.test"})
    task = await client.execute(
        CREATE_TASK, {"title": "Ship v2", "subscriberIds": [ann["addPerson"]["id"]]}
    )
    return str(task["createTask"]["id"])


# --------------------------------------------------------------------------- request logs


def request_lines(log: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "beacon.request"]


async def test_given_an_x_request_id_when_a_request_is_served_then_it_is_echoed_and_logged_as_one_json_line(  # noqa: E501
    node: Node,
) -> None:
    # When a request carries its own id
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{node.server.base_url}/healthz", headers={"X-Request-ID": "trace-42.a"}
        )

    # Then the response carries it back
    assert response.headers["x-request-id"] == "trace-42.a"

    # And the server logs the request once, as JSON with that id
    def logged() -> bool:
        return any(
            line.get("request_id") == "trace-42.a" for line in request_lines(node.server.log)
        )

    await poll_until(logged, "the request's log line")
    (line,) = [e for e in request_lines(node.server.log) if e.get("request_id") == "trace-42.a"]
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz", 200)
    assert line["duration_ms"] >= 0
    assert line["level"] == "info"


async def test_given_no_or_an_unsafe_request_id_when_a_request_is_served_then_a_fresh_one_is_made(
    node: Node,
) -> None:
    async with httpx.AsyncClient() as http:
        # When a request comes without an id, and one with a header-breaking id
        plain = await http.get(f"{node.server.base_url}/healthz")
        unsafe = await http.get(
            f"{node.server.base_url}/healthz", headers={"X-Request-ID": "a b\tc" + "x" * 200}
        )

    # Then each gets a fresh id of 32 hex digits, and the two differ
    ids = [plain.headers["x-request-id"], unsafe.headers["x-request-id"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids), ids
    assert ids[0] != ids[1]


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("server_env", [{"EMBEDDED_WORKER": "0"}])
async def test_given_queued_sends_and_an_open_websocket_when_metrics_are_scraped_then_they_show_the_queue_and_the_connection(  # noqa: E501
    node: Node,
) -> None:
    # Given a task whose email waits in the queue (no worker runs)
    await add_contact_and_task(node.client)

    # When metrics are scraped while a websocket is open, and after it closed
    async with node.client.subscribe(UPDATES, {}):
        await poll_until(
            lambda: _gauge_is(node, "beacon_websocket_connections", 1), "the websocket gauge"
        )
        during = await node.metrics()
    await poll_until(
        lambda: _gauge_is(node, "beacon_websocket_connections", 0), "the websocket to close"
    )

    # Then the queue shows one due job, waiting for a while already
    assert during['beacon_send_queue_jobs{state="due"}'] == 1
    assert during['beacon_send_queue_jobs{state="leased"}'] == 0
    assert during["beacon_send_queue_oldest_job_age_seconds"] > 0
    assert during["beacon_subscriptions_active"] == 1
    # And every family operators watch is there
    assert {
        "beacon_sends_total",
        "beacon_pixel_hits_total",
        "beacon_broadcast_reconnects_total",
        "beacon_websocket_connections",
        "beacon_send_queue_jobs",
        "beacon_send_queue_oldest_job_age_seconds",
    } <= await node.metric_names()


async def _gauge_is(node: Node, name: str, value: float) -> bool:
    return (await node.metrics()).get(name) == value


# --------------------------------------------------------------------------- limits


def nested(levels: int) -> str:
    """task → comments → edges → node → task …, `levels` times: 4 levels of depth each."""
    inner = "id"
    for _ in range(levels):
        inner = f"comments {{ edges {{ node {{ task {{ {inner} }} }} }} }}"
    return f"query Deep($id: ID!) {{ task(id: $id) {{ {inner} }} }}"


async def expect_http_code(node: Node, query: str, code: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{node.server.base_url}/graphql",
            json={"query": query, "variables": {"id": "x"}},
            headers={
                **node.client.headers(),
                "Accept": "application/graphql-response+json",
            },
        )
    body = response.json()
    assert response.status_code == 400, body
    assert [e["extensions"]["code"] for e in body["errors"]] == [code], body


async def test_given_documents_past_the_limits_when_posted_then_each_is_refused_with_its_code(
    node: Node,
) -> None:
    # A document nested deeper than 12 levels
    await expect_http_code(node, nested(4), "QUERY_TOO_DEEP")
    # More than 20 aliases
    aliases = " ".join(f"a{n}: viewer {{ id }}" for n in range(21))
    await expect_http_code(node, f"{{ {aliases} }}", "TOO_MANY_ALIASES")
    # More than 2,000 tokens
    fields = " ".join("id" for _ in range(2100))
    await expect_http_code(node, f"{{ viewer {{ {fields} }} }}", "QUERY_TOO_LARGE")
    # And a document within the limits is served
    assert (await node.client.execute("{ viewer { id } }"))["viewer"]["id"]


@pytest.mark.parametrize("server_env", [{"GRAPHQL_MAX_DEPTH": "3"}])
async def test_given_a_too_deep_subscription_when_sent_over_a_websocket_then_the_error_carries_its_code(  # noqa: E501
    node: Node,
) -> None:
    # Given a server that allows a depth of 3, and a subscription 5 deep
    document = "subscription { deliveryUpdated { status { deliveries { recipient { id } } } } }"

    # When it is sent over a websocket
    async with node.client.subscribe(document) as subscription:
        with pytest.raises(GraphQLError) as refused:
            await subscription.next()

    # Then it is refused with the limit's own code
    assert refused.value.codes == ["QUERY_TOO_DEEP"]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_given_a_connection_at_its_subscription_limit_when_it_subscribes_again_then_it_is_refused_with_a_code(  # noqa: E501
    node: Node, protocol: str
) -> None:
    url = node.server.base_url.replace("http://", "ws://") + "/graphql"
    start = "subscribe" if protocol == TRANSPORT_WS else "start"
    async with websockets.connect(url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        init = {"authorization": f"Bearer {node.client.token}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"

        # Given two running subscriptions (WS_MAX_SUBSCRIPTIONS=2)
        for number in (1, 2, 3):
            payload = {"query": UPDATES, "variables": {}}
            await ws.send(json.dumps({"id": str(number), "type": start, "payload": payload}))

        # Then the third is refused, with a code
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        while message["type"] in ("ka", "ping"):
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert (message["type"], message["id"]) == ("error", "3")
    errors = message["payload"] if isinstance(message["payload"], list) else [message["payload"]]
    assert [e["extensions"]["code"] for e in errors] == ["TOO_MANY_SUBSCRIPTIONS"]


# --------------------------------------------------------------------------- resuming


@pytest.mark.parametrize(
    ("cursor", "why"),
    [("not-a-cursor", "not a cursor"), ("ZGMxOjk5OTk5OTk5", "ahead of every event")],
)
async def test_given_an_invalid_cursor_when_a_subscription_resumes_then_it_is_refused_as_bad_input(
    node: Node, cursor: str, why: str
) -> None:
    async with node.client.subscribe(UPDATES, {"after": cursor}) as subscription:
        with pytest.raises(GraphQLError) as refused:
            await subscription.next()
    assert refused.value.codes == ["BAD_USER_INPUT"], why


async def test_given_a_cursor_when_a_client_resumes_on_sqlite_then_it_gets_what_it_missed_once_then_the_live_stream(  # noqa: E501
    node: Node,
) -> None:
    # Given a subscriber that saw a comment's delivery SENT
    task_id = await add_contact_and_task(node.client)
    async with node.client.subscribe(UPDATES, {"taskId": task_id}) as subscription:
        log = UpdateLog(subscription)
        first, _ = await log.trigger(
            lambda: _comment(node.client, task_id, "First"), caused_by_comment
        )
        await log.until(lambda u: u["commentId"] == first["id"] and _sent(u))
        cursor = log.updates[-1]["cursor"]

    # When a comment is added and sent while it is away
    missed = await _comment(node.client, task_id, "Missed")
    await node.sink.wait_for_text("Missed")

    # and it comes back with its cursor
    async with node.client.subscribe(UPDATES, {"taskId": task_id, "after": cursor}) as subscription:
        resumed = UpdateLog(subscription)
        # Then the missed delivery comes first, as it is now
        first_back = await resumed.until(lambda _: True)
        assert first_back["commentId"] == missed["id"]
        await resumed.until(lambda u: u["commentId"] == missed["id"] and _sent(u))

        # And then the live stream, with nothing from before the cursor
        live = await _comment(node.client, task_id, "Live")
        await resumed.until(lambda u: u["commentId"] == live["id"] and _sent(u))
    assert {u["commentId"] for u in resumed.updates} == {missed["id"], live["id"]}
    assert len({u["cursor"] for u in resumed.updates}) == len(resumed.updates)


async def _comment(client: GraphQLClient, task_id: str, body: str) -> dict[str, Any]:
    data = await client.execute(ADD_COMMENT, {"taskId": task_id, "body": body})
    comment: dict[str, Any] = data["addComment"]
    return comment


def _sent(update: dict[str, Any]) -> bool:
    return bool(update["delivery"]["state"] == "SENT")


async def test_given_subscribers_with_one_selection_when_a_delivery_changes_then_they_receive_the_same_update_made_once(  # noqa: E501
    node: Node,
) -> None:
    # Given a task, and three subscribers to it with the same selection
    task_id = await add_contact_and_task(node.client)
    async with (
        node.client.subscribe(UPDATES, {"taskId": task_id}) as first,
        node.client.subscribe(UPDATES, {"taskId": task_id}) as second,
        node.client.subscribe(UPDATES, {"taskId": task_id}) as third,
    ):
        logs = [UpdateLog(first), UpdateLog(second), UpdateLog(third)]
        # (Read before the comment: its delivery may be sent before trigger returns.)
        before = await node.metrics()
        comment, _ = await logs[0].trigger(
            lambda: _comment(node.client, task_id, "Shared"), caused_by_comment
        )

        # When its delivery is sent
        for log in logs:
            await log.until(lambda u: u["commentId"] == comment["id"] and _sent(u))
        after = await node.metrics()

    # Then all three received the same update (same cursor, same state)
    sent = [[u for u in log.updates if _sent(u)][-1] for log in logs]
    assert sent[0] == sent[1] == sent[2]
    # And it was made once and shared with the others
    shared = 'beacon_live_messages_total{way="shared"}'
    assert after.get(shared, 0) - before.get(shared, 0) >= 2
