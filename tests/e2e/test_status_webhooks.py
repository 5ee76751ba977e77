"""Status webhooks end to end: the real server (with its in-process worker) sends each
status change to a local receiver that verifies it with the `standardwebhooks` library;
endpoints are managed, the attempt log read and events replayed over GraphQL. On SQLite
and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.helpers import Beacon
from tests.support.graphql_client import GraphQLError
from tests.support.providers.status_receiver import StatusReceiver
from tests.support.waiting import eventually

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.parametrize(
        "server_env",
        [{"ALLOW_PRIVATE_NETWORKS": "1", "WEBHOOK_RETRY_SECONDS": "0.2,0.2,0.2"}],
    ),
]

CREATE = """
mutation($url: String!, $events: [WebhookEventType!]!) {
  createWebhookEndpoint(input: {url: $url, events: $events}) {
    secret endpoint { id url events channels enabled }
  }
}
"""
ATTEMPTS = """
query($id: ID!, $failedOnly: Boolean!) {
  webhookDeliveries(endpointId: $id, first: 50, failedOnly: $failedOnly) {
    edges { node { eventId eventType statusCode latencyMs response succeeded } }
    pageInfo { hasNextPage }
  }
}
"""
REPLAY = (
    "mutation($id: ID!, $after: String) { replayWebhookEvents(endpointId: $id, after: $after) }"
)
ROTATE = "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }"
ENDPOINTS = "{ webhookEndpoints { id enabled disabledReason } }"
UPDATE = """
mutation($id: ID!, $enabled: Boolean) {
  updateWebhookEndpoint(id: $id, input: {enabled: $enabled}) { enabled disabledReason }
}
"""


@pytest.fixture
async def receiver() -> AsyncIterator[StatusReceiver]:
    async with StatusReceiver() as receiver:
        yield receiver


async def create_endpoint(
    beacon: Beacon, receiver: StatusReceiver, events: list[str]
) -> dict[str, Any]:
    data = await beacon.client.execute(CREATE, {"url": receiver.url + "/in", "events": events})
    created: dict[str, Any] = data["createWebhookEndpoint"]
    receiver.secret = created["secret"]
    return created


async def comment_to(beacon: Beacon, *emails: str) -> None:
    people = [await beacon.add_contact(e.split("@")[0], e) for e in emails]
    task_id = await beacon.create_task("Roof", people)
    await beacon.add_comment(task_id, "Tiles arrive Monday")


async def test_status_changes_arrive_signed_in_order_and_a_replay_repeats_them_by_id(
    beacon: Beacon, receiver: StatusReceiver
) -> None:
    # given
    created = await create_endpoint(beacon, receiver, ["QUEUED", "SENT"])
    assert created["secret"].startswith("whsec_")
    assert created["endpoint"]["enabled"] is True
    endpoint_id = created["endpoint"]["id"]

    # when: a task (its creation notifies) and a comment, to two people
    await comment_to(beacon, "ann@example.test", "bob@example.test")

    # then: QUEUED and SENT for each of the four deliveries, each verified
    await receiver.wait_for(8)
    assert all(r.verified for r in receiver.received)
    ids = receiver.ids()
    assert ids == sorted(ids, key=lambda i: int(i.removeprefix("evt_")))
    for delivery in {p["data"]["deliveryId"] for p in receiver.delivered()}:
        types = [p["type"] for p in receiver.delivered() if p["data"]["deliveryId"] == delivery]
        assert types == ["delivery.queued", "delivery.sent"]

    async def logged() -> list[dict[str, Any]]:
        # An attempt's row is written after its answer arrives: the receiver sees it first.
        log = await beacon.client.execute(ATTEMPTS, {"id": endpoint_id, "failedOnly": False})
        nodes = [edge["node"] for edge in log["webhookDeliveries"]["edges"]]
        assert [n["eventId"] for n in reversed(nodes)] == ids
        return nodes

    nodes = await eventually(logged)
    assert {n["statusCode"] for n in nodes} == {200}
    assert all(n["latencyMs"] > 0 and n["response"] == "ok" for n in nodes)

    # when: everything after the second event is replayed
    replayed = await beacon.client.execute(REPLAY, {"id": endpoint_id, "after": ids[1]})

    # then: the same events again, in order, under the same ids
    assert replayed["replayWebhookEvents"] == 6
    await receiver.wait_for(14)
    assert receiver.ids() == ids + ids[2:]


async def test_a_receiver_that_fails_then_recovers_gets_every_event(
    beacon: Beacon, receiver: StatusReceiver
) -> None:
    created = await create_endpoint(beacon, receiver, ["QUEUED"])
    receiver.answers.extend([500, 503])

    await comment_to(beacon, "ann@example.test")

    await receiver.wait_for(4)
    assert [r.status for r in receiver.received] == [500, 503, 200, 200]
    first = receiver.received[0].webhook_id
    assert receiver.ids(status=None)[:3] == [first] * 3
    failed = await beacon.client.execute(
        ATTEMPTS, {"id": created["endpoint"]["id"], "failedOnly": True}
    )
    codes = [e["node"]["statusCode"] for e in failed["webhookDeliveries"]["edges"]]
    assert codes == [503, 500]


async def test_a_rotated_secret_signs_alongside_the_old_one_and_disable_stops_events(
    beacon: Beacon, receiver: StatusReceiver
) -> None:
    created = await create_endpoint(beacon, receiver, ["QUEUED"])
    endpoint_id = created["endpoint"]["id"]
    old_secret = receiver.secret

    # when: the secret is rotated; a receiver with either secret verifies the next event
    rotated = await beacon.client.execute(ROTATE, {"id": endpoint_id})
    receiver.secret = rotated["rotateWebhookSecret"]["secret"]
    assert receiver.secret != old_secret
    await comment_to(beacon, "ann@example.test")
    await receiver.wait_for(2)
    assert all(r.verified for r in receiver.received)

    # when: disabled, nothing more arrives
    data = await beacon.client.execute(UPDATE, {"id": endpoint_id, "enabled": False})
    assert data["updateWebhookEndpoint"] == {
        "enabled": False,
        "disabledReason": "disabled by a user",
    }
    await comment_to(beacon, "bob@example.test")
    async with StatusReceiver(receiver.secret) as other:
        await create_endpoint(beacon, other, ["QUEUED"])
        await comment_to(beacon, "cid@example.test")
        await other.wait_for(2)
    assert len(receiver.received) == 2


async def test_an_endpoint_enabled_again_is_sent_the_event_that_waited(
    beacon: Beacon, receiver: StatusReceiver
) -> None:
    # given: the receiver answered 410 Gone, so the endpoint was disabled with the event
    # still pending
    created = await create_endpoint(beacon, receiver, ["QUEUED"])
    endpoint_id = created["endpoint"]["id"]
    receiver.answers.append(410)
    ann = await beacon.add_contact("ann", "ann@example.test")
    await beacon.create_task("Roof", [ann])

    async def disabled() -> None:
        (endpoint,) = (await beacon.client.execute(ENDPOINTS))["webhookEndpoints"]
        assert endpoint["enabled"] is False, endpoint

    await eventually(disabled)

    # when: enabled again
    data = await beacon.client.execute(UPDATE, {"id": endpoint_id, "enabled": True})

    # then: the reason is gone, and the event that waited is sent again under its id
    assert data["updateWebhookEndpoint"] == {"enabled": True, "disabledReason": None}
    await receiver.wait_for(2)
    assert [r.status for r in receiver.received] == [410, 200]
    assert receiver.received[0].webhook_id == receiver.received[1].webhook_id


async def test_bad_input_and_other_accounts_endpoints_are_clear_errors(
    beacon: Beacon, receiver: StatusReceiver
) -> None:
    for url, events in (("ftp://example.test/x", ["SENT"]), (receiver.url, [])):
        with pytest.raises(GraphQLError) as bad:
            await beacon.client.execute(CREATE, {"url": url, "events": events})
        assert bad.value.codes == ["BAD_USER_INPUT"]
    created = await create_endpoint(beacon, receiver, ["SENT"])
    other = await beacon.create_account("Globex")
    stranger = beacon.client_for(other.token)
    with pytest.raises(GraphQLError) as missing:
        await stranger.execute(ROTATE, {"id": created["endpoint"]["id"]})
    assert missing.value.codes == ["NOT_FOUND"]
    with pytest.raises(GraphQLError) as both:
        await beacon.client.execute(REPLAY, {"id": created["endpoint"]["id"]})
    assert both.value.codes == ["BAD_USER_INPUT"]
